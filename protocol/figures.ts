/**
 * Constants behind the figures every room shows, in a module of their own (no schema library): the
 * player's pages import it directly so their bundle stays small.
 */

/**
 * The one window every P2P share figure is computed over: the channel's offload (tracker stats, the
 * directory, the dashboard, channel cards, `/metrics`) and a player's own share of segment bytes from
 * peers (the watch page's stats panel).
 */
export const OFFLOAD_WINDOW_MS = 60_000;
