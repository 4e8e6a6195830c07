/** DOM and formatting helpers shared by the pages. Server strings only ever go through textContent. */
import { ICONS } from './icons.ts';
import type * as PeerTVModule from '../index.ts';
import type { PeerTVPlayer } from '../api.ts';

declare global {
  interface Window {
    /** The player bundle (`/peertv.js`), loaded before `app.js` on the watch and embed pages. */
    PeerTV?: typeof PeerTVModule;
    /** The player of this page, for scripts and tests. */
    peertv?: PeerTVPlayer;
    /** socket.io's browser client (`/socket.io/socket.io.js`, served by the tracker). */
    io?: (opts?: Record<string, unknown>) => IoSocket;
  }
}

/** The part of a socket.io client socket the pages use. */
export interface IoSocket {
  connected: boolean;
  on(event: string, fn: (...args: never[]) => void): IoSocket;
  emit(event: string, ...args: unknown[]): IoSocket;
  disconnect(): void;
}

export function $(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} is missing from the page`);
  return e;
}

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { className?: string; text?: string; attrs?: Record<string, string> } = {},
  ...children: (Node | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props.className) e.className = props.className;
  if (props.text !== undefined) e.textContent = props.text;
  for (const [k, v] of Object.entries(props.attrs ?? {})) e.setAttribute(k, v);
  for (const c of children) if (c) e.append(c);
  return e;
}

const iconTemplates = new Map<string, HTMLTemplateElement>();

/** A copy of one of the inline SVG icons (icons.ts; shared by every page). */
export function icon(name: string): Node {
  let t = iconTemplates.get(name);
  if (!t) {
    const svg = ICONS[name];
    if (svg === undefined) return document.createTextNode('');
    t = document.createElement('template');
    t.innerHTML = svg; // a constant from icons.ts, not data
    iconTemplates.set(name, t);
  }
  return t.content.cloneNode(true);
}

export function formatKbps(kbps: number): string {
  if (!Number.isFinite(kbps) || kbps <= 0) return '0 kbit/s';
  if (kbps >= 1000) return `${(kbps / 1000).toFixed(kbps >= 10_000 ? 0 : 1)} Mbit/s`;
  return `${kbps.toFixed(kbps >= 100 ? 0 : 1)} kbit/s`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes <= 0) return '0 B';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = bytes;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(i === 0 || v >= 100 ? 0 : 1)} ${units[i]}`;
}

export function formatPercent(ratio: number): string {
  if (!Number.isFinite(ratio)) return '—';
  const p = ratio * 100;
  return `${p > 0 && p < 1 ? p.toFixed(1) : Math.round(p)}%`;
}

/** 75 → "1:15", 3700 → "1:01:40". */
export function formatClock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '0:00';
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export function formatViewers(n: number): string {
  return n === 1 ? '1 watching' : `${n.toLocaleString()} watching`;
}

/** Recording ids are the broadcast's start time in UTC: `YYYYMMDD-HHMMSS[-n]`. */
export function recordingDate(id: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})/.exec(id);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
  const date = new Date(Date.UTC(y!, mo! - 1, d!, h!, mi!, s!));
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export function formatDate(date: Date | undefined): string {
  if (!date) return '';
  return date.toLocaleString(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });
}

export function watchUrl(channel: string, recording?: string): string {
  const base = `/watch/${encodeURIComponent(channel)}`;
  return recording ? `${base}?recording=${encodeURIComponent(recording)}` : base;
}

/** A stable hue for a channel id (thumbnail tint). */
export function hue(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return Math.abs(h) % 360;
}

export async function getJson<T>(url: string): Promise<{ status: number; body: T | undefined }> {
  const res = await fetch(url, { cache: 'no-cache' });
  let body: T | undefined;
  try {
    body = (await res.json()) as T;
  } catch {
    body = undefined;
  }
  return { status: res.status, body };
}

export function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}
