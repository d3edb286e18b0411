// End-to-end tests of the web app in headless Chromium.
//
//   node tests/web/e2e.mjs http://127.0.0.1:8080 [--update-docs]
//
// PIXPRESS_E2E_ONLY=room runs only the checks whose name contains "room".
// Drives the real app served by a running pixpress at the given base URL.
// Screenshots go to tests/web/artifacts/; with --update-docs the page
// screenshots are also copied to docs/img/ for the README.
// Exits 0 when every check passed, 1 otherwise.

import assert from 'node:assert/strict';
import { mkdir, readFile, copyFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './launch.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, 'fixtures');
const artifacts = path.join(here, 'artifacts');
const docsImg = path.join(here, '..', '..', 'docs', 'img');

const args = process.argv.slice(2);
const base = (args.find((a) => !a.startsWith('--')) || '').replace(/\/+$/, '');
const updateDocs = args.includes('--update-docs');
if (!/^https?:\/\//.test(base)) {
  console.error('usage: node e2e.mjs <base-url, e.g. http://127.0.0.1:8080> [--update-docs]');
  process.exit(2);
}
const appUrl = base + '/app/';

// Generous upper bounds for waits on the server (image encodes on a slow machine).
const JOB_TIMEOUT = 90_000;
const UI_TIMEOUT = 20_000;

const FIXTURES = ['rocket.jpg', 'horse.png', 'camera.png'];
const MAX_WIDTH = 480;

// ---- helpers ----------------------------------------------------------------

/** Width and height from a WebP file's header, or null when it is not WebP. */
function webpDims(bytes) {
  if (bytes.length < 30) return null;
  if (bytes.toString('latin1', 0, 4) !== 'RIFF' || bytes.toString('latin1', 8, 12) !== 'WEBP') return null;
  const chunk = bytes.toString('latin1', 12, 16);
  if (chunk === 'VP8 ') {
    assert.equal(bytes.readUIntBE(23, 3), 0x9d012a, 'VP8 start code');
    return { width: bytes.readUInt16LE(26) & 0x3fff, height: bytes.readUInt16LE(28) & 0x3fff };
  }
  if (chunk === 'VP8L') {
    assert.equal(bytes[20], 0x2f, 'VP8L signature');
    const bits = bytes.readUInt32LE(21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8X') {
    return { width: bytes.readUIntLE(24, 3) + 1, height: bytes.readUIntLE(27, 3) + 1 };
  }
  return null;
}

/** Entries of a ZIP archive with stored (uncompressed) members. */
function readZip(bytes) {
  const endAt = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(endAt >= 0, 'zip has an end-of-central-directory record');
  const count = bytes.readUInt16LE(endAt + 10);
  let at = bytes.readUInt32LE(endAt + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    assert.equal(bytes.readUInt32LE(at), 0x02014b50, 'central directory entry');
    const method = bytes.readUInt16LE(at + 10);
    const size = bytes.readUInt32LE(at + 24);
    const nameLength = bytes.readUInt16LE(at + 28);
    const extraLength = bytes.readUInt16LE(at + 30);
    const commentLength = bytes.readUInt16LE(at + 32);
    const offset = bytes.readUInt32LE(at + 42);
    const name = bytes.toString('utf8', at + 46, at + 46 + nameLength);
    assert.equal(method, 0, 'stored entry');
    assert.equal(bytes.readUInt32LE(offset), 0x04034b50, 'local header of ' + name);
    const dataAt = offset + 30 + bytes.readUInt16LE(offset + 26) + bytes.readUInt16LE(offset + 28);
    entries.push({ name, data: bytes.subarray(dataAt, dataAt + size) });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** The app's own byte formatting (common.js), for comparing shown text. */
function formatBytes(n) {
  if (n < 1000) return n + ' bytes';
  if (n < 1000 * 1000) return (n / 1000).toFixed(n < 10000 ? 2 : 1) + ' kB';
  return (n / 1000 / 1000).toFixed(2) + ' MB';
}

async function downloadBytes(page, click) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: UI_TIMEOUT }), click()]);
  const file = await download.path();
  return { name: download.suggestedFilename(), bytes: await readFile(file) };
}

/** Decodes bytes in the page (as an <img> would) and returns their size. */
async function decodeInPage(page, bytes, mime) {
  return page.evaluate(
    async ({ b64, type }) => {
      const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const bitmap = await createImageBitmap(new Blob([raw], { type }));
      return { width: bitmap.width, height: bitmap.height };
    },
    { b64: bytes.toString('base64'), type: mime },
  );
}

async function noHorizontalScroll(page, label) {
  const widths = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  assert.ok(widths.scroll <= widths.client, `${label}: page is ${widths.scroll}px wide in a ${widths.client}px window`);
}

async function screenshot(page, name, toDocs) {
  const file = path.join(artifacts, name);
  await page.screenshot({ path: file, fullPage: true });
  if (toDocs && updateDocs) {
    await mkdir(docsImg, { recursive: true });
    await copyFile(file, path.join(docsImg, name));
  }
}

async function joinRoom(page, room, name) {
  await page.goto(appUrl + '#rooms');
  await page.getByLabel('Room', { exact: true }).fill(room);
  await page.getByLabel('Your name').fill(name);
  await page.getByRole('button', { name: 'Join room' }).click();
  await page.locator('#conn-status', { hasText: 'Connected as ' + name }).waitFor({ timeout: UI_TIMEOUT });
}

async function sendText(page, text) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByLabel('Message', { exact: true }).press('Enter');
}

function textMessages(page, text) {
  return page.locator('#messages .msg-text-item', { hasText: text });
}

// ---- the checks -------------------------------------------------------------

const checks = [];
function check(name, fn) {
  checks.push({ name, fn });
}

let browser;
const shared = {};

check('the app is served at /app/ and links both pages', async () => {
  const res = await fetch(appUrl);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') || '', /^text\/html/);
  const missing = await fetch(base + '/app/no-such-file.js');
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error, 'not_found');

  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('console', (msg) => msg.type() === 'error' && problems.push(msg.text()));
  // A browser opening the server's root lands in the app.
  await page.goto(base + '/');
  assert.equal(page.url(), appUrl);
  await page.getByRole('heading', { name: 'Compress images' }).waitFor({ timeout: UI_TIMEOUT });
  assert.equal(await page.locator('#nav-compress').getAttribute('aria-current'), 'page');
  await page.getByRole('link', { name: 'Rooms' }).click();
  await page.getByRole('heading', { name: 'Rooms', exact: true }).waitFor({ timeout: UI_TIMEOUT });
  assert.equal(await page.locator('#view-compress').isHidden(), true);
  // Keyboard: the file picker is reachable with Tab and shows focus.
  await page.getByRole('link', { name: 'Compress' }).click();
  await page.getByLabel('Size budget (kB)').focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'file-input');
  assert.deepEqual(problems, [], 'no script errors');
  await page.close();
});

check('three images compress to WebP and download with the shown sizes', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  shared.compressPage = page;
  await page.goto(appUrl + '#compress');
  await page.getByLabel('Format').selectOption('webp');
  await page.getByLabel('Max width (px)').fill(String(MAX_WIDTH));
  await page.getByLabel('Choose images…').setInputFiles(FIXTURES.map((f) => path.join(fixtures, f)));

  const items = page.locator('#file-list > li');
  await page.waitForFunction(
    (n) => document.querySelectorAll('#file-list > li[data-state="done"], #file-list > li[data-state="error"]').length === n,
    FIXTURES.length,
    { timeout: JOB_TIMEOUT },
  );
  assert.equal(await items.count(), FIXTURES.length);
  for (let i = 0; i < FIXTURES.length; i++) {
    const item = items.nth(i);
    const state = await item.getAttribute('data-state');
    assert.equal(state, 'done', `${FIXTURES[i]} failed: ${await item.locator('.file-error').textContent()}`);
  }

  const downloads = [];
  for (let i = 0; i < FIXTURES.length; i++) {
    const fixture = FIXTURES[i];
    const item = items.nth(i);
    assert.equal((await item.locator('.file-name').textContent()).trim(), fixture);
    const originalSize = (await stat(path.join(fixtures, fixture))).size;
    const shownOriginal = Number(await item.locator('data.original-size').getAttribute('value'));
    assert.equal(shownOriginal, originalSize, `${fixture}: original size shown`);
    const shownSize = Number(await item.locator('data.result-size').getAttribute('value'));
    assert.equal((await item.locator('data.result-size').textContent()).trim(), formatBytes(shownSize));
    const dims = item.locator('.result-dims');
    const shownWidth = Number(await dims.getAttribute('data-width'));
    const shownHeight = Number(await dims.getAttribute('data-height'));
    assert.match(await dims.textContent(), new RegExp(`${shownWidth} × ${shownHeight}`));
    assert.equal((await item.locator('.result-format').textContent()).trim(), 'WebP');
    const saved = Math.round((1 - shownSize / originalSize) * 100);
    const savedText = saved >= 0 ? `${saved}% saved` : `${-saved}% larger`;
    assert.match(await item.locator('.sizes').textContent(), new RegExp(savedText));

    const { name, bytes } = await downloadBytes(page, () => item.getByRole('link', { name: /^Download / }).click());
    assert.equal(name, fixture.replace(/\.[^.]+$/, '.webp'));
    const header = webpDims(bytes);
    assert.ok(header, `${name} is a WebP file (starts ${bytes.subarray(0, 12).toString('hex')})`);
    assert.equal(bytes.readUInt32LE(4) + 8 + (bytes.readUInt32LE(4) % 2), bytes.length, `${name}: RIFF size`);
    assert.equal(bytes.length, shownSize, `${name}: downloaded length equals the size shown`);
    assert.deepEqual(header, { width: shownWidth, height: shownHeight }, `${name}: header dimensions`);
    assert.ok(shownWidth <= MAX_WIDTH, `${name}: width ${shownWidth} fits the ${MAX_WIDTH}px box`);
    const decoded = await decodeInPage(page, bytes, 'image/webp');
    assert.deepEqual(decoded, header, `${name}: decodes at the shown dimensions`);
    const preview = await item.locator('img.compare-after').evaluate((img) => ({ width: img.naturalWidth, height: img.naturalHeight }));
    assert.deepEqual(preview, header, `${name}: the comparison shows the result`);
    downloads.push({ name, bytes });
  }

  // The comparison slider moves the split.
  const slider = items.first().getByRole('slider');
  await slider.focus();
  await page.keyboard.press('End');
  assert.equal(await items.first().locator('.compare-frame').evaluate((f) => f.style.getPropertyValue('--pos')), '100%');

  const zip = await downloadBytes(page, () => page.getByRole('button', { name: 'Download all (.zip)' }).click());
  assert.equal(zip.name, 'pixpress-images.zip');
  const entries = readZip(zip.bytes);
  assert.deepEqual(
    entries.map((e) => e.name),
    downloads.map((d) => d.name),
  );
  for (const [i, entry] of entries.entries()) {
    assert.ok(entry.data.equals(downloads[i].bytes), `${entry.name}: zip entry equals the single download`);
  }
  assert.match(await page.locator('#compress-summary').textContent(), /3 of 3 done/);
});

check('a text file named .jpg is refused with a plain message on that file', async () => {
  const page = shared.compressPage;
  assert.ok(page, 'runs after the compress check');
  await page.getByLabel('Choose images…').setInputFiles({
    name: 'notes.jpg',
    mimeType: 'image/jpeg',
    buffer: Buffer.from('These are my notes, not a picture.\n'),
  });
  const item = page.locator('#file-list > li', { hasText: 'notes.jpg' });
  await item.locator('.file-error').waitFor({ timeout: JOB_TIMEOUT });
  assert.equal(await item.getAttribute('data-state'), 'error');
  assert.match(await item.locator('.file-error').textContent(), /not an image the server can read/);
  assert.equal(await item.getByRole('button', { name: 'Try again' }).isVisible(), true);
  assert.match(await page.locator('#compress-summary').textContent(), /1 failed/);
  await screenshot(page, 'compress.png', true);
  await page.setViewportSize({ width: 390, height: 844 });
  await noHorizontalScroll(page, 'compress at phone width');
  await screenshot(page, 'compress-phone.png', false);
  await page.context().close();
});

check('two pages in one room see each other’s text and image; a late joiner gets the history', async () => {
  const room = 'e2e-' + Date.now().toString(36);
  const alice = await (await browser.newContext({ viewport: { width: 1000, height: 900 } })).newPage();
  const bob = await (await browser.newContext({ viewport: { width: 1000, height: 900 } })).newPage();
  await joinRoom(alice, room, 'Alice');
  await joinRoom(bob, room, 'Bob');

  await sendText(alice, 'Hello from Alice');
  await textMessages(bob, 'Hello from Alice').waitFor({ timeout: UI_TIMEOUT });
  await textMessages(alice, 'Hello from Alice').waitFor({ timeout: UI_TIMEOUT });
  assert.equal((await textMessages(bob, 'Hello from Alice').locator('.msg-from').textContent()).trim(), 'Alice');
  await sendText(bob, 'Hi Alice, Bob here');
  await textMessages(alice, 'Hi Alice, Bob here').waitFor({ timeout: UI_TIMEOUT });

  await bob.getByLabel('Share images…').setInputFiles(path.join(fixtures, 'rocket.jpg'));
  // Bob sees his upload finish with the facts of the processed image.
  const sent = bob.locator('#messages .msg-image.mine', { hasText: 'rocket.jpg' });
  await sent.locator('.image-info, .image-error').first().waitFor({ timeout: JOB_TIMEOUT });
  assert.equal(await sent.getAttribute('data-state'), 'done', await sent.textContent());
  const sentInfo = sent.locator('.image-info');
  const size = Number(await sentInfo.getAttribute('data-size'));
  const width = Number(await sentInfo.getAttribute('data-width'));
  const height = Number(await sentInfo.getAttribute('data-height'));
  assert.ok(size > 0 && width > 0 && height > 0, 'processed size and dimensions are shown');

  await sent.locator('img.preview').evaluate((img) => img.decode());
  await screenshot(bob, 'rooms-sender.png', false);

  // Alice receives it, rebuilt from its chunks, with the same facts, under
  // the name of its delivered format.
  const got = alice.locator('#messages .msg-image', { hasText: 'rocket.webp' });
  await got.locator('img.received').waitFor({ timeout: JOB_TIMEOUT });
  const info = got.locator('.image-info');
  assert.equal(Number(await info.getAttribute('data-size')), size);
  assert.equal(Number(await info.getAttribute('data-width')), width);
  assert.equal(Number(await info.getAttribute('data-height')), height);
  assert.match(await info.textContent(), new RegExp(`${width} × ${height} · ${formatBytes(size).replace('.', '\\.')}`));
  assert.equal((await got.locator('.msg-from').textContent()).trim(), 'Bob');
  const shown = await got.locator('img.received').evaluate(async (img) => {
    await img.decode();
    return { width: img.naturalWidth, height: img.naturalHeight };
  });
  assert.deepEqual(shown, { width, height }, 'the received image shows at the stated dimensions');
  assert.equal(await alice.locator('#messages .msg-image').count(), 1, 'one card per shared image, none left receiving');
  const saved = await downloadBytes(alice, () => got.getByRole('link', { name: 'Download rocket.webp' }).click());
  assert.equal(saved.bytes.length, size, 'the received image has the stated size');
  assert.deepEqual(await decodeInPage(alice, saved.bytes, 'application/octet-stream'), { width, height });

  // A late joiner sees the history once, in order.
  const carol = await (await browser.newContext({ viewport: { width: 1000, height: 900 } })).newPage();
  await joinRoom(carol, room, 'Carol');
  const late = carol.locator('#messages .msg-image', { hasText: 'rocket.webp' });
  await late.locator('img.received').waitFor({ timeout: JOB_TIMEOUT });
  assert.equal(Number(await late.locator('.image-info').getAttribute('data-size')), size);
  await textMessages(carol, 'Hi Alice, Bob here').waitFor({ timeout: UI_TIMEOUT });
  const order = await carol.locator('#messages .msg-text').allTextContents();
  assert.deepEqual(order, ['Hello from Alice', 'Hi Alice, Bob here']);

  await alice.locator('.msg-image img.received').first().evaluate((img) => img.decode());
  await screenshot(alice, 'rooms.png', true);
  await alice.setViewportSize({ width: 390, height: 844 });
  await noHorizontalScroll(alice, 'rooms at phone width');
  await screenshot(alice, 'rooms-phone.png', false);
  shared.room = room;
  shared.alice = alice;
  for (const page of [bob, carol]) await page.context().close();
});

check('a dropped room connection reconnects without repeating the history', async () => {
  const { room, alice } = shared;
  assert.ok(room && alice, 'runs after the room check');
  const context = await browser.newContext();
  const sockets = [];
  await context.routeWebSocket(/\/ws\/share\//, (ws) => {
    ws.connectToServer();
    sockets.push(ws);
  });
  const dave = await context.newPage();
  await joinRoom(dave, room, 'Dave');
  await textMessages(dave, 'Hi Alice, Bob here').waitFor({ timeout: UI_TIMEOUT });
  assert.equal(sockets.length, 1);

  await sockets[0].close({ code: 4000, reason: 'dropped by the test' });
  await dave.locator('#conn-status[data-state="retrying"]').waitFor({ timeout: UI_TIMEOUT });
  await dave.locator('#conn-status', { hasText: 'Connected as Dave' }).waitFor({ timeout: UI_TIMEOUT });
  await dave.locator('#messages .notice', { hasText: 'Reconnected.' }).waitFor({ timeout: UI_TIMEOUT });
  assert.equal(sockets.length, 2, 'a second connection was opened');

  await sendText(dave, 'Dave is back');
  await textMessages(alice, 'Dave is back').waitFor({ timeout: UI_TIMEOUT });
  await textMessages(dave, 'Dave is back').waitFor({ timeout: UI_TIMEOUT });
  // The replayed history did not duplicate what was already on screen.
  assert.equal(await textMessages(dave, 'Hello from Alice').count(), 1);
  assert.equal(await dave.locator('#messages .msg-image').count(), 1);
  await context.close();
  await alice.context().close();
});

// ---- runner -----------------------------------------------------------------

async function main() {
  await mkdir(artifacts, { recursive: true });
  browser = await launch();
  const only = process.env.PIXPRESS_E2E_ONLY;
  const selected = checks.filter((c) => !only || c.name.includes(only));
  let failed = 0;
  try {
    for (const { name, fn } of selected) {
      const started = Date.now();
      try {
        await fn();
        console.log(`ok   ${name} (${Date.now() - started} ms)`);
      } catch (err) {
        failed += 1;
        console.log(`FAIL ${name}\n     ${String((err && err.stack) || err).split('\n').join('\n     ')}`);
      }
    }
  } finally {
    await browser.close();
  }
  console.log(`${selected.length - failed} of ${selected.length} checks passed; screenshots in ${artifacts}`);
  return failed === 0 && selected.length > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('e2e run failed to start:', err);
    process.exit(1);
  },
);
