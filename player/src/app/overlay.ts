/**
 * The watch and embed pages' state overlay over the video (loading, offline, ended, not found, error:
 * a title, a text and what to do next) and the notice banner above it (one notice at a time, the
 * newest; some hide by themselves).
 */
import type { ChannelInfo, PlayerNoticeCode } from '../../../protocol/index.ts';
import type { WatchPage } from './channel-info.ts';
import { $, el, icon, Listeners, opt, watchUrl } from './util.ts';

export type OverlayState = 'none' | 'loading' | 'offline' | 'ended' | 'not-found' | 'error';

export interface StateOverlayDeps {
  page: WatchPage | undefined;
  /** The channel's directory entry, when known (its title and recordings). */
  info: () => ChannelInfo | undefined;
  /** The Retry button was pressed. */
  retry: () => void;
  /** The overlay changed (after the DOM is updated). */
  changed: (state: OverlayState) => void;
}

/** The newest recording of a channel (ids are start times, so they sort by date). */
function newestRecording(info: ChannelInfo | undefined): ChannelInfo['recordings'][number] | undefined {
  return [...(info?.recordings ?? [])].sort((a, b) => b.id.localeCompare(a.id))[0];
}

export class StateOverlay {
  state: OverlayState = 'loading';
  /** It shows its default texts (which name the channel: refreshed once its title is known). */
  isDefault = true;
  readonly #deps: StateOverlayDeps;
  readonly #playerEl: HTMLElement;
  /** The Retry button's listener (the button is rebuilt with the actions). */
  readonly #retry = new Listeners();

  constructor(playerEl: HTMLElement, deps: StateOverlayDeps) {
    this.#playerEl = playerEl;
    this.#deps = deps;
  }

  set(state: OverlayState, title?: string, text?: string): void {
    this.state = state;
    this.isDefault = title === undefined && text === undefined;
    const o = $('state-overlay');
    o.dataset.state = state;
    this.#playerEl.dataset.overlay = state;
    const share = opt('share');
    if (share) share.hidden = state === 'not-found';
    o.hidden = state === 'none';
    const name = this.#deps.info()?.title ?? this.#deps.page?.channel ?? '';
    const texts: Record<OverlayState, [string, string]> = {
      none: ['', ''],
      loading: ['Loading…', ''],
      offline: [
        'Channel offline',
        `${name} is not broadcasting right now. This page starts playing when it goes live.`,
      ],
      ended: ['Broadcast ended', `${name} is not live any more.`],
      'not-found': ['Not found', ''],
      error: ['Playback failed', 'Something went wrong while loading the stream.'],
    };
    $('state-title').textContent = title ?? texts[state][0];
    $('state-text').textContent = text ?? texts[state][1];
    this.renderActions();
    this.#deps.changed(state);
  }

  /** The buttons and links under the text (the newest recording once a broadcast ended). */
  renderActions(): void {
    const actions = $('state-actions');
    const state = this.state;
    const page = this.#deps.page;
    const items: HTMLElement[] = [];
    if (state === 'ended') {
      const rec = newestRecording(this.#deps.info());
      if (rec && page) {
        const a = el('a', {
          className: 'btn btn-primary',
          attrs: {
            // The embed stays an embed: the recording plays in the same frame.
            href: page.embed
              ? watchUrl(page.channel, rec.id).replace(/^\/watch\//, '/embed/')
              : watchUrl(page.channel, rec.id),
            id: 'ended-recording-link',
          },
        });
        a.append(icon('play'), el('span', { text: 'Watch the recording' }));
        items.push(a);
      } else
        items.push(el('span', { className: 'state-note', text: 'The recording will appear here shortly.' }));
    }
    let retry: HTMLElement | undefined;
    if (state === 'error') {
      retry = el('button', {
        className: 'btn btn-primary',
        text: 'Retry',
        attrs: { type: 'button', id: 'retry' },
      });
      items.push(retry);
    }
    if (state === 'offline' || state === 'ended' || state === 'not-found')
      items.push(
        el('a', {
          className: 'btn',
          text: 'Browse channels',
          attrs: page?.embed ? { href: '/', target: '_blank', rel: 'noopener' } : { href: '/' },
        }),
      );
    // Only rebuild when the content changes (keeps focus and hover stable).
    const key = items.map((i) => i.outerHTML).join('');
    if (actions.dataset.key !== key) {
      actions.dataset.key = key;
      this.#retry.removeAll();
      if (retry) this.#retry.on(retry, 'click', () => this.#deps.retry());
      actions.replaceChildren(...items);
    }
    $('state-spinner').hidden = state !== 'loading';
  }

  destroy(): void {
    this.#retry.removeAll();
  }
}

/** Notices shown as a banner: the newest one, by code; closable, some hide after a while. */
export class Banners {
  readonly #texts = new Map<string, string>();
  readonly #listeners = new Listeners();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor() {
    this.#listeners.on($('banner-close'), 'click', () => {
      const code = $('banner').dataset.code;
      if (code) this.#texts.delete(code);
      this.#render();
    });
  }

  show(code: PlayerNoticeCode, text: string, autoHideMs = 0): void {
    this.#texts.delete(code);
    this.#texts.set(code, text);
    this.#render();
    if (autoHideMs) {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => {
        this.#texts.delete(code);
        this.#render();
      }, autoHideMs);
    }
  }

  clear(): void {
    this.#texts.clear();
    this.#render();
  }

  #render(): void {
    const b = $('banner');
    const last = [...this.#texts].at(-1);
    b.hidden = !last;
    b.dataset.code = last?.[0] ?? '';
    $('banner-text').textContent = last?.[1] ?? '';
  }

  destroy(): void {
    clearTimeout(this.#timer);
    this.#listeners.removeAll();
  }
}
