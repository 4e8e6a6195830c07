/**
 * The web player's pages (home, watch, embed): plain DOM, no framework. Which page this is comes from
 * `<body data-page>`. The watch and embed pages load `/peertv.js` (the player API) before this file.
 */
import { home } from './home.ts';
import { watch } from './watch.ts';

function main(): void {
  const page = document.body.dataset.page;
  if (page === 'home') home();
  else if (page === 'watch') watch(false);
  else if (page === 'embed') watch(true);
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', main, { once: true });
else main();
