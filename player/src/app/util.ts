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

/** An element that only some pages have (the watch page's panels; the embed page has none). */
export const opt = <T extends HTMLElement>(id: string): T | null => document.getElementById(id) as T | null;

/** Sets an element's text only when it changes (a write with the same text still costs a layout). */
export function setText(e: HTMLElement, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

export function setHidden(e: HTMLElement, hidden: boolean): void {
  if (e.hidden !== hidden) e.hidden = hidden;
}

export function setData(e: HTMLElement, key: string, value: string): void {
  if (e.dataset[key] !== value) e.dataset[key] = value;
}

export function setTitle(e: HTMLElement, title: string): void {
  if (e.title !== title) e.title = title;
}

export const pageHidden = (): boolean => document.visibilityState === 'hidden';

/**
 * The DOM listeners one component added, removed together by its `destroy()` (each component of a page
 * adds and removes its own, as hls.js's controllers register and unregister theirs on the event bus).
 */
export class Listeners {
  readonly #off: (() => void)[] = [];

  on<E extends Event = Event>(
    target: EventTarget,
    type: string,
    fn: (e: E) => void,
    options?: boolean | AddEventListenerOptions,
  ): void {
    const listener = fn as EventListener;
    target.addEventListener(type, listener, options);
    this.#off.push(() => target.removeEventListener(type, listener, options));
  }

  /** Removes every listener added so far (idempotent). */
  removeAll(): void {
    for (const off of this.#off.splice(0)) off();
  }
}
