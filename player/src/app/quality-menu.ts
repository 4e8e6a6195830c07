/**
 * The quality menu: Auto (hls.js's choice, naming the rendition it plays) or one rendition, with the
 * button's label; arrow keys move in the menu, Escape or a click elsewhere closes it.
 */
import type { Level, PeerTVPlayer, PlayerStats } from '../api.ts';
import { formatKbps } from './format.ts';
import { $, el, icon, Listeners, setData, setText, setTitle } from './util.ts';

export interface QualityMenuDeps {
  player: () => PeerTVPlayer | undefined;
  /** The menu opened or closed (the controls stay shown while it is open). */
  changed: () => void;
}

export class QualityMenu {
  levels: Level[] = [];
  readonly #deps: QualityMenuDeps;
  readonly #listeners = new Listeners();

  constructor(deps: QualityMenuDeps) {
    this.#deps = deps;
    const qb = $('quality-button');
    const menu = $('quality-menu');
    const on = this.#listeners.on.bind(this.#listeners);
    on(qb, 'click', (e) => {
      e.stopPropagation();
      this.#setOpen(menu.hidden !== false);
    });
    on(document, 'click', (e) => {
      if (!menu.hidden && !menu.contains(e.target as Node)) this.#setOpen(false);
    });
    on(menu, 'click', (e) => {
      const item = (e.target as HTMLElement).closest<HTMLElement>('[data-level]');
      const player = this.#deps.player();
      if (!item || !player) return;
      const level = item.dataset.level === 'auto' ? -1 : Number(item.dataset.level);
      player.setLevel(level);
      this.#setOpen(false);
      this.render();
      qb.focus();
    });
    on<KeyboardEvent>(menu, 'keydown', (e) => {
      const items = [...menu.querySelectorAll<HTMLElement>('[data-level]')];
      const i = items.indexOf(document.activeElement as HTMLElement);
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        items[(i + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length]?.focus();
      } else if (e.key === 'Escape') {
        this.#setOpen(false);
        qb.focus();
      }
    });
  }

  get open(): boolean {
    return !$('quality-menu').hidden;
  }

  setLevels(levels: Level[]): void {
    this.levels = levels;
    this.render();
  }

  #setOpen(open: boolean): void {
    const menu = $('quality-menu');
    menu.hidden = !open;
    $('quality-button').setAttribute('aria-expanded', String(open));
    if (open) {
      this.render();
      menu.querySelector<HTMLElement>('[aria-checked="true"]')?.focus();
    }
    this.#deps.changed();
  }

  /** The level being played, and whether the choice is automatic. */
  #currentLevel(): { level: number; auto: boolean } {
    const hls = this.#deps.player()?.hls;
    return { level: hls?.currentLevel ?? -1, auto: hls?.autoLevelEnabled ?? true };
  }

  render(): void {
    const menu = $('quality-menu');
    const { level, auto } = this.#currentLevel();
    const playing = this.levels.find((l) => l.index === level);
    const item = (key: string, label: string, sub: string, checked: boolean, current: boolean) =>
      el(
        'button',
        {
          className: 'menu-item',
          attrs: {
            type: 'button',
            role: 'menuitemradio',
            'data-level': key,
            'aria-checked': String(checked),
            'data-current': String(current),
          },
        },
        el(
          'span',
          { className: 'menu-check', attrs: { 'aria-hidden': 'true' } },
          checked ? icon('check') : null,
        ),
        el('span', { className: 'menu-label', text: label }),
        sub ? el('span', { className: 'menu-sub', text: sub }) : null,
      );
    const sorted = [...this.levels].sort((a, b) => b.height - a.height || b.bandwidthBps - a.bandwidthBps);
    const items = [
      item('auto', 'Auto', auto && playing ? playing.name : '', auto, false),
      ...sorted.map((l) =>
        item(
          String(l.index),
          l.name,
          formatKbps(l.bandwidthBps / 1000),
          !auto && l.index === level,
          l.index === level,
        ),
      ),
    ];
    const key = items.map((i) => i.outerHTML).join('');
    if (menu.dataset.key !== key) {
      const focused = (document.activeElement as HTMLElement | null)?.dataset?.level;
      menu.dataset.key = key;
      menu.replaceChildren(el('div', { className: 'menu-title', text: 'Quality' }), ...items);
      if (focused !== undefined && !menu.hidden)
        menu.querySelector<HTMLElement>(`[data-level="${focused}"]`)?.focus();
    }
    $('quality-button').hidden = this.levels.length === 0;
    this.renderLabel();
  }

  /** The button's label: the rendition playing (from the stats when hls.js has no levels yet). */
  renderLabel(s?: PlayerStats): void {
    const { level, auto } = this.#currentLevel();
    const name = this.levels.find((l) => l.index === level)?.name ?? s?.rendition ?? '';
    const qb = $('quality-button');
    const text = auto ? (name ? `Auto · ${name}` : 'Auto') : name;
    setText($('quality-label'), text);
    setData(qb, 'auto', String(auto));
    setTitle(qb, `Quality: ${text}`);
  }

  destroy(): void {
    this.#listeners.removeAll();
  }
}
