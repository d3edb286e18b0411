// The original share app's kind of page against pixpress, in headless
// Chromium (SPEC 3.1).
//
//   node tests/web/share_page.mjs http://127.0.0.1:8080
//
// fixtures/share-page.html is a page that behaves like the original one. It
// is served at http://HOST/{uuid-v4} (the browser is handed the file for
// that address, as the original server renders its page there) and opens
// ws://HOST/{uuid-v4} on the running pixpress. Two pages join, count each
// other and allow uploads, keep a textarea in step, and both show an image
// one of them shares; a late joiner gets the text and the image; a page
// that leaves is counted out.
// Exits 0 when every check passed, 1 otherwise.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './launch.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, 'fixtures');
const base = (process.argv[2] || '').replace(/\/+$/, '');
if (!/^http:\/\//.test(base)) {
  console.error('usage: node share_page.mjs <base-url, e.g. http://127.0.0.1:8080>');
  process.exit(2);
}

// Generous upper bounds for waits on the server (image encodes on a slow machine).
const JOB_TIMEOUT = 90_000;
const UI_TIMEOUT = 20_000;

const room = randomUUID();
const roomUrl = `${base}/${room}`;
const pageHtml = await readFile(path.join(fixtures, 'share-page.html'), 'utf8');

/** A new browser page on the room's address, served the fixture page. */
async function openRoom(browser) {
  const context = await browser.newContext();
  await context.route(roomUrl, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: pageHtml }));
  const page = await context.newPage();
  await page.goto(roomUrl);
  await page.locator('body[data-open="true"]').waitFor({ timeout: UI_TIMEOUT });
  return page;
}

async function expectCount(page, n) {
  await page.locator('#count', { hasText: new RegExp(`^${n}$`) }).waitFor({ timeout: UI_TIMEOUT });
  assert.equal(await page.locator('#file').isDisabled(), n < 2, `upload is allowed only with two members (${n})`);
}

/** The facts of the image named `filename` once the page shows it. */
async function shownImage(page, filename) {
  const img = page.locator(`#images img[data-filename="${filename}"]`);
  await img.waitFor({ timeout: JOB_TIMEOUT });
  return img.evaluate(async (el) => {
    await el.decode();
    return {
      mime: el.dataset.mime,
      width: Number(el.dataset.width),
      height: Number(el.dataset.height),
      naturalWidth: el.naturalWidth,
      naturalHeight: el.naturalHeight,
      src: el.src,
    };
  });
}

async function main() {
  // The page is handed to the browser by the test rather than fetched, so
  // Chromium counts it as a public page and would refuse its connection to
  // the loopback server; the original page, served by the same host as the
  // server, meets no such check.
  const browser = await launch(['--disable-features=LocalNetworkAccessChecks']);
  try {
    // Alone, a page counts one and cannot upload.
    const ann = await openRoom(browser);
    await expectCount(ann, 1);
    // A second page: both count two and may upload.
    const bob = await openRoom(browser);
    await expectCount(bob, 2);
    await expectCount(ann, 2);
    console.log('ok   two pages count each other and allow uploads');

    // The text pad: typing on one page shows on the other.
    await ann.locator('#pad').pressSequentially('hello pixpress');
    await bob.waitForFunction(() => document.getElementById('pad').value === 'hello pixpress', null, { timeout: UI_TIMEOUT });
    await bob.locator('#pad').fill('edited by bob');
    await ann.waitForFunction(() => document.getElementById('pad').value === 'edited by bob', null, { timeout: UI_TIMEOUT });
    console.log('ok   the textarea is kept in step');

    // Bob shares a JPEG; both pages, Bob's included, show the WebP.
    await bob.locator('#file').setInputFiles(path.join(fixtures, 'rocket.jpg'));
    const seen = [];
    for (const page of [bob, ann]) {
      const shown = await shownImage(page, 'rocket.webp');
      assert.equal(shown.mime, 'image/webp');
      assert.ok(shown.src.startsWith('data:image/webp;base64,'), 'shown from the data the server sent');
      assert.deepEqual([shown.naturalWidth, shown.naturalHeight], [shown.width, shown.height], 'the image decodes at the stated size');
      assert.deepEqual([shown.width, shown.height], [640, 427]);
      seen.push(shown.src);
    }
    assert.equal(seen[0], seen[1], 'the uploader sees the image the other sees');
    assert.equal(await bob.locator('#error').textContent(), '', 'no error for the upload or the invite message');
    console.log('ok   both pages, the uploader’s included, show the shared image');

    // A late joiner gets the text and the image; a page that leaves is counted out.
    const carol = await openRoom(browser);
    await expectCount(carol, 3);
    await carol.waitForFunction(() => document.getElementById('pad').value === 'edited by bob', null, { timeout: UI_TIMEOUT });
    const late = await shownImage(carol, 'rocket.webp');
    assert.equal(late.src, seen[0]);
    await bob.context().close();
    await expectCount(ann, 2);
    await expectCount(carol, 2);
    console.log('ok   a late joiner gets the text and the image; a page that leaves is counted out');
    return 0;
  } catch (err) {
    console.log(`FAIL ${String((err && err.stack) || err).split('\n').join('\n     ')}`);
    return 1;
  } finally {
    await browser.close();
  }
}

main().then(
  (code) => {
    if (code === 0) console.log('share page checks passed');
    process.exit(code);
  },
  (err) => {
    console.error('the share page run failed to start:', err);
    process.exit(1);
  },
);
