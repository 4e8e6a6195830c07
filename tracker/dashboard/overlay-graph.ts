/**
 * The dashboard's overlay graph (SVG): the origin in the centre, first-tier peers on an inner ring, the
 * others on outer rings, recommended links, and who fed whom (arrows, width ∝ bytes). Every string
 * from the server goes in through textContent or setAttribute, never as markup.
 */
import type { ChannelStatsSample, OverlaySnapshot } from '../../protocol/index.ts';
import { formatBytes, formatKbps } from '../../player/index.ts';

export type OverlayPeer = OverlaySnapshot['peers'][number];

const SVG_NS = 'http://www.w3.org/2000/svg';
export const KINDS: readonly string[] = ['browser', 'node'];
const SIZE = 600;
const CENTER = SIZE / 2;
const ORIGIN_R = 24;

export const num = (v: unknown, fallback = 0): number =>
  typeof v === 'number' && Number.isFinite(v) ? v : fallback;
export const str = (v: unknown): string =>
  typeof v === 'string' ? v : v === null || v === undefined ? '' : String(v);

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  parent?: Element,
): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

/** FNV-1a: a stable pseudo-random order for peers, so the layout does not depend on arrival order. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

interface Point {
  x: number;
  y: number;
  r: number;
}

interface Ring {
  r: number;
  label: string;
  angle?: number;
}

/** The peers of a snapshot that have an id (the snapshot is typed, but it came over the wire). */
export function peersOf(overlay: OverlaySnapshot | undefined): OverlayPeer[] {
  return Array.isArray(overlay?.peers) ? overlay.peers.filter((p) => p && typeof p.id === 'string') : [];
}

/**
 * Deterministic layout: the origin in the centre, first-tier peers on an inner ring, the others on
 * outer rings; within a ring peers are ordered by a hash of their id, so an update moves nothing but
 * the neighbours of a peer that came or went.
 */
function layout(peers: OverlayPeer[]): { pos: Map<string, Point>; rings: Ring[] } {
  const n = peers.length;
  const rMax = Math.max(4, Math.min(14, 1500 / Math.max(1, n)));
  const rMin = Math.max(2.5, rMax * 0.45);
  const maxUp = Math.max(1, ...peers.map((p) => num(p.uploadKbps)));
  const radius = (p: OverlayPeer) => rMin + (rMax - rMin) * Math.sqrt(Math.min(1, num(p.uploadKbps) / maxUp));
  const byHash = (a: OverlayPeer, b: OverlayPeer) => hash(a.id) - hash(b.id) || (a.id < b.id ? -1 : 1);
  const tier = peers.filter((p) => p.firstTier).sort(byHash);
  const rest = peers.filter((p) => !p.firstTier).sort(byHash);
  const pos = new Map<string, Point>();
  const rings: Ring[] = [];
  const innerR = 115;
  tier.forEach((p, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / tier.length;
    pos.set(p.id, { x: CENTER + innerR * Math.cos(a), y: CENTER + innerR * Math.sin(a), r: radius(p) });
  });
  if (tier.length) {
    // The ring's label goes in the widest gap between first-tier peers.
    const gapMid = tier.length === 1 ? Math.PI / 2 : -Math.PI / 2 + Math.PI / tier.length;
    rings.push({ r: innerR, label: 'first tier', angle: gapMid });
  }
  if (rest.length) {
    // As many outer rings (between radius 190 and 272) as it takes to keep nodes apart.
    const gap = 2 * rMax + 8;
    let count = 1;
    const radii = (k: number) =>
      k === 1 ? [232] : Array.from({ length: k }, (_, j) => 196 + (76 * j) / (k - 1));
    const capacity = (k: number) => radii(k).reduce((sum, r) => sum + Math.floor((2 * Math.PI * r) / gap), 0);
    while (count < 5 && capacity(count) < rest.length) count++;
    const rs = radii(count);
    const total = rs.reduce((a, b) => a + b, 0);
    let k = 0;
    rs.forEach((r, j) => {
      const m = j === rs.length - 1 ? rest.length - k : Math.round((rest.length * r) / total);
      const slice = rest.slice(k, k + m);
      k += slice.length;
      const offset = -Math.PI / 2 + (j % 2 ? Math.PI / Math.max(1, slice.length) : 0) + Math.PI / 7;
      slice.forEach((p, i) => {
        const a = offset + (2 * Math.PI * i) / slice.length;
        pos.set(p.id, { x: CENTER + r * Math.cos(a), y: CENTER + r * Math.sin(a), r: radius(p) });
      });
      if (slice.length) rings.push({ r, label: '' });
    });
  }
  return { pos, rings };
}

/** Endpoint-trimmed quadratic arrow from a to b, bowed to the right so opposite flows separate. */
function arrow(
  group: Element,
  a: Point,
  b: Point,
  width: number,
  cls: string,
  bow: number,
): SVGPathElement | null {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const len = Math.hypot(dx, dy);
  if (len < 1) return null;
  const nx = -dy / len;
  const ny = dx / len;
  const c = { x: (a.x + b.x) / 2 + nx * len * bow, y: (a.y + b.y) / 2 + ny * len * bow };
  const unit = (p: { x: number; y: number }, q: { x: number; y: number }) => {
    const l = Math.hypot(q.x - p.x, q.y - p.y) || 1;
    return { x: (q.x - p.x) / l, y: (q.y - p.y) / l };
  };
  const us = unit(a, c);
  const start = { x: a.x + us.x * (a.r + 2), y: a.y + us.y * (a.r + 2) };
  const ue = unit(b, c);
  const tip = { x: b.x + ue.x * (b.r + 2), y: b.y + ue.y * (b.r + 2) };
  const dir = unit(c, tip);
  const headL = 5 + 1.6 * width;
  const headW = 2.5 + 1.1 * width;
  const base = { x: tip.x - dir.x * headL, y: tip.y - dir.y * headL };
  const end = { x: tip.x - dir.x * headL * 0.7, y: tip.y - dir.y * headL * 0.7 };
  const f = (v: number) => v.toFixed(1);
  const path = svg(
    'path',
    {
      class: cls,
      d: `M${f(start.x)},${f(start.y)} Q${f(c.x)},${f(c.y)} ${f(end.x)},${f(end.y)}`,
      'stroke-width': width.toFixed(2),
    },
    group,
  );
  const corners: [number, number][] = [
    [tip.x, tip.y],
    [base.x - dir.y * headW, base.y + dir.x * headW],
    [base.x + dir.y * headW, base.y - dir.x * headW],
  ];
  svg(
    'polygon',
    { class: `${cls}-head`, points: corners.map(([px, py]) => `${f(px)},${f(py)}`).join(' ') },
    group,
  );
  return path;
}

/**
 * Draws the snapshot into `root` (replacing what was there) and returns each peer's node, by id, for
 * highlighting; `hoverPeer` starts highlighted.
 */
export function renderOverlay(
  root: SVGSVGElement,
  countEl: HTMLElement,
  overlay: OverlaySnapshot | undefined,
  current: ChannelStatsSample | undefined,
  hoverPeer: string | null,
): Map<string, Element> {
  const peers = peersOf(overlay);
  const { pos, rings } = layout(peers);
  const origin: Point = { x: CENTER, y: CENTER, r: ORIGIN_R };

  const gRings = svg('g', { class: 'rings' });
  for (const ring of rings) {
    svg('circle', { class: 'ring', cx: CENTER, cy: CENTER, r: ring.r.toFixed(1) }, gRings);
    if (ring.label && ring.angle !== undefined) {
      const x = CENTER + ring.r * Math.cos(ring.angle);
      const y = CENTER + ring.r * Math.sin(ring.angle) + 4;
      const t = svg(
        'text',
        { class: 'ring-label', x: x.toFixed(1), y: y.toFixed(1), 'text-anchor': 'middle' },
        gRings,
      );
      t.textContent = ring.label;
    }
  }

  const gLinks = svg('g', { class: 'links' });
  for (const link of Array.isArray(overlay?.links) ? overlay.links : []) {
    const a = pos.get(link?.[0]);
    const b = pos.get(link?.[1]);
    if (!a || !b) continue;
    svg(
      'line',
      { class: 'link', x1: a.x.toFixed(1), y1: a.y.toFixed(1), x2: b.x.toFixed(1), y2: b.y.toFixed(1) },
      gLinks,
    );
  }

  const gTier = svg('g', { class: 'tiers' });
  for (const p of peers) {
    const at = pos.get(p.id);
    if (p.firstTier && at) arrow(gTier, origin, at, 2, 'tier', 0);
  }

  const gFlows = svg('g', { class: 'flows' });
  const flows = (Array.isArray(overlay?.flows) ? overlay.flows : []).filter(
    (f) => f && pos.has(f.from) && pos.has(f.to) && num(f.bytes) > 0,
  );
  const maxBytes = Math.max(1, ...flows.map((f) => num(f.bytes)));
  // Many flows: thinner and lighter, so the graph stays readable.
  const widest = Math.max(2.5, Math.min(8, 8 * Math.sqrt(12 / Math.max(1, flows.length))));
  gFlows.setAttribute('stroke-opacity', flows.length > 24 ? '0.55' : '0.8');
  for (const f of [...flows].sort((a, b) => num(a.bytes) - num(b.bytes))) {
    const width = 1 + (widest - 1) * (num(f.bytes) / maxBytes);
    const path = arrow(gFlows, pos.get(f.from)!, pos.get(f.to)!, width, 'flow', 0.12);
    if (!path) continue;
    path.dataset.from = f.from;
    path.dataset.to = f.to;
    const title = svg('title', {}, path);
    title.textContent = `${f.from} → ${f.to}: ${formatBytes(f.bytes)} in the last interval`;
  }

  const gPeers = svg('g', { class: 'peers' });
  const labels = peers.length <= 24;
  const nodes = new Map<string, Element>();
  for (const p of peers) {
    const at = pos.get(p.id)!;
    const kind = KINDS.includes(p.kind) ? p.kind : 'other';
    const g = svg(
      'g',
      {
        class: `peer kind-${kind}${p.mode === 'relay' ? ' relay' : ''}${p.id === hoverPeer ? ' hl' : ''}`,
        transform: `translate(${at.x.toFixed(1)},${at.y.toFixed(1)})`,
      },
      gPeers,
    );
    g.dataset.peerId = p.id;
    svg('circle', { class: 'body', r: at.r.toFixed(1) }, g);
    if (p.mode === 'relay') svg('circle', { class: 'relay-ring', r: (at.r + 3.5).toFixed(1) }, g);
    if (labels) {
      // Label outside the node, away from the centre.
      const ang = Math.atan2(at.y - CENTER, at.x - CENTER);
      const d = at.r + (p.mode === 'relay' ? 10 : 7);
      const lx = Math.cos(ang) * d;
      const ly = Math.sin(ang) * d;
      const t = svg(
        'text',
        {
          x: lx.toFixed(1),
          y: (ly + (Math.sin(ang) > 0.3 ? 11 : Math.sin(ang) < -0.3 ? -2 : 4.5)).toFixed(1),
          'text-anchor': Math.cos(ang) > 0.3 ? 'start' : Math.cos(ang) < -0.3 ? 'end' : 'middle',
        },
        g,
      );
      t.textContent = p.id.slice(0, 4);
    }
    const title = svg('title', {}, g);
    title.textContent = [
      p.id,
      `${str(p.kind)} · ${str(p.mode)} · ${str(p.rendition)} · NAT ${str(p.natType)}`,
      `upload ${formatKbps(p.uploadKbps)} · download ${formatKbps(p.downloadKbps)}`,
      `buffer ${num(p.bufferS).toFixed(1)} s${p.firstTier ? ' · first tier' : ''}`,
    ].join('\n');
    nodes.set(p.id, g);
  }

  const gOrigin = svg('g', { class: 'origin', transform: `translate(${CENTER},${CENTER})` });
  svg('circle', { r: ORIGIN_R }, gOrigin);
  svg('text', { 'text-anchor': 'middle', y: 4 }, gOrigin).textContent = 'origin';
  svg('title', {}, gOrigin).textContent = 'origin (HTTP)';

  const parts: Element[] = [gRings, gLinks, gTier, gFlows, gPeers, gOrigin];
  if (peers.length === 0) {
    const t = svg('text', { class: 'empty-note', x: CENTER, y: CENTER + 60, 'text-anchor': 'middle' });
    t.textContent = overlay ? 'no peers yet' : 'waiting for statistics…';
    parts.push(t);
  }
  root.replaceChildren(...parts);
  root.dataset.peers = String(peers.length);
  root.dataset.flows = String(flows.length);

  // The snapshot is capped (first tier first); the channel may have more peers than it shows.
  const relaysShown = peers.filter((p) => p.mode === 'relay').length;
  const total = Math.max(
    peers.length,
    typeof overlay?.totalPeers === 'number' ? overlay.totalPeers : num(current?.viewers) + relaysShown,
  );
  countEl.textContent =
    total > peers.length
      ? `showing ${peers.length} of ${total} peers`
      : `${peers.length} peer${peers.length === 1 ? '' : 's'} · ${flows.length} flow${flows.length === 1 ? '' : 's'}`;
  countEl.classList.toggle('capped', total > peers.length);
  return nodes;
}
