// Starts headless Chromium (Debian's, or PIXPRESS_CHROMIUM) for the browser
// tests, with the flags a closed network needs: no background connections,
// no updates, no sync.
import { chromium } from 'playwright-core';

export const executablePath = process.env.PIXPRESS_CHROMIUM || '/usr/bin/chromium';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches the browser; `extra` flags are added to the common ones. */
export function launch(extra = []) {
  return chromium.launch({ executablePath, headless: true, args: [...FLAGS, ...extra] });
}
