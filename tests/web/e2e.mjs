// End-to-end tests of the web app in headless Chromium.
//
//   node tests/web/e2e.mjs http://127.0.0.1:8080 [--update-docs]
//        [--api-key=KEY --jwt-secret=SECRET]
//
// PIXPRESS_E2E_ONLY=room runs only the checks whose name contains "room".
// Drives the real app served by a running pixpress at the given base URL.
// With --api-key and --jwt-secret (a server with auth.api_keys and
// auth.jwt_secret set) every page first signs in through Settings, and the
// checks of what a page says without credentials run too.
// axe-core checks every page and state for serious or critical problems.
// Screenshots go to tests/web/artifacts/; with --update-docs the page
// screenshots are also copied to docs/img/ for the README.
// Exits 0 when every check passed, 1 otherwise.

import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { mkdir, readFile, copyFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch } from './launch.mjs';

const require = createRequire(import.meta.url);

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, 'fixtures');
const docsImg = path.join(here, '..', '..', 'docs', 'img');

const args = process.argv.slice(2);
const base = (args.find((a) => !a.startsWith('--')) || '').replace(/\/+$/, '');
const updateDocs = args.includes('--update-docs');
const option = (name) => (args.find((a) => a.startsWith(`--${name}=`)) || '').slice(name.length + 3);
const apiKey = option('api-key');
const jwtSecret = option('jwt-secret');
const authOn = Boolean(apiKey || jwtSecret);
// The run with auth on keeps its screenshots apart.
const artifacts = path.join(here, 'artifacts', authOn ? 'auth' : '');
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

/** An HS256 token for `sub`, as the server's `auth.jwt_secret` verifies it. */
function signedToken(sub, secret = jwtSecret) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = part({ alg: 'HS256', typ: 'JWT' }) + '.' + part({ sub, exp: Math.floor(Date.now() / 1000) + 3600 });
  return body + '.' + createHmac('sha256', secret).update(body).digest('base64url');
}

/** Headers for direct API calls of the test itself. */
function apiHeaders() {
  return apiKey ? { Authorization: 'Bearer ' + apiKey } : {};
}

const axeSource = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
const axeChecked = [];

/** Runs axe-core on the page as it is: no serious or critical violations. */
async function axeCheck(page, label) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => n.target.join(' ')) }));
  });
  assert.deepEqual(violations, [], `${label}: axe-core found serious or critical problems:\n${JSON.stringify(violations, null, 2)}`);
  axeChecked.push(label);
}

/** Presses Tab until the focused element matches `selector`; fails after `max` presses. */
async function tabTo(page, selector, max = 80) {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((sel) => document.activeElement && document.activeElement.matches(sel), selector)) return;
    await page.keyboard.press('Tab');
  }
  const at = await page.evaluate(() => document.activeElement && document.activeElement.outerHTML.slice(0, 120));
  assert.fail(`${selector} is not reachable with Tab (focus stayed at ${at})`);
}

/**
 * On a server with auth on, signs the page in through Settings with the
 * keyboard alone: the API key and a token for `user`. Does nothing otherwise.
 */
async function signIn(page, user) {
  if (!authOn) return;
  await page.goto(appUrl + '#settings');
  await page.locator('#nav-settings').focus();
  await tabTo(page, '#set-api-key');
  await page.keyboard.type(apiKey);
  await tabTo(page, '#set-token');
  await page.keyboard.type(signedToken(user));
  await tabTo(page, '#settings-save');
  await page.keyboard.press('Enter');
  await page.locator('#settings-status', { hasText: `A signed token for user ${user} is set.` }).waitFor({ timeout: UI_TIMEOUT });
}

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
  await signIn(page, name);
  await page.goto(appUrl + '#rooms');
  await page.getByLabel('Room', { exact: true }).fill(room);
  if (authOn) assert.equal(await page.getByLabel('Your name').inputValue(), name, 'the name is the token\'s user');
  else await page.getByLabel('Your name').fill(name);
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
  await page.getByRole('link', { name: 'Rooms', exact: true }).click();
  await page.getByRole('heading', { name: 'Rooms', exact: true }).waitFor({ timeout: UI_TIMEOUT });
  assert.equal(await page.locator('#view-compress').isHidden(), true);
  await axeCheck(page, 'rooms: empty');
  await page.getByRole('link', { name: 'Chat', exact: true }).click();
  await page.getByRole('heading', { name: 'Chat', exact: true }).waitFor({ timeout: UI_TIMEOUT });
  await axeCheck(page, 'chat: not connected');
  await page.getByRole('link', { name: 'Settings', exact: true }).click();
  await page.getByRole('heading', { name: 'Settings', exact: true }).waitFor({ timeout: UI_TIMEOUT });
  await axeCheck(page, 'settings');
  await screenshot(page, 'settings.png', true);
  // Keyboard: the file picker is reachable with Tab and shows focus.
  await page.getByRole('link', { name: 'Compress', exact: true }).click();
  await axeCheck(page, 'compress: empty');
  await page.getByLabel('Size budget (kB)').focus();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'file-input');
  // Keyboard: Auto format from the format list turns on Auto quality.
  await page.locator('#nav-compress').focus();
  await tabTo(page, '#opt-format');
  await page.keyboard.press('ArrowUp');
  assert.equal(await page.locator('#opt-format').inputValue(), 'auto');
  assert.equal(await page.locator('#opt-quality-auto').isChecked(), true);
  assert.equal(await page.locator('#opt-quality-value').textContent(), 'Auto');
  // The default qualities come from the server: WebP's is its default.
  const facts = await (await fetch(base + '/', { headers: { Accept: 'application/json' } })).json();
  await page.locator('#opt-format').selectOption('webp');
  assert.equal(await page.locator('#opt-quality-auto').isChecked(), false);
  assert.equal(Number(await page.locator('#opt-quality').inputValue()), facts.default_quality.webp);
  // So do the name limits of rooms and chat.
  for (const id of ['#room-name', '#display-name', '#chat-user', '#chat-with']) {
    assert.equal(await page.locator(id).evaluate((n) => n.maxLength), facts.max_name_chars, id);
  }
  assert.equal(await page.locator('#text-input').evaluate((n) => n.maxLength), facts.share.max_text_bytes);
  assert.match(await page.locator('#auto-hint').textContent(), new RegExp(`scores ${facts.auto_quality.target} \\(of 100\\)`));
  assert.deepEqual(problems, [], 'no script errors');
  await page.close();
});

check('three images compress to WebP and download with the shown sizes', async () => {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const page = await context.newPage();
  shared.compressPage = page;
  await signIn(page, 'compressor');
  await page.goto(appUrl + '#compress');
  await page.getByLabel('Format').selectOption('webp');
  await page.getByLabel('Max width (px)').fill(String(MAX_WIDTH));
  // The first upload is held until the page was checked while uploading.
  let release;
  const held = new Promise((resolve) => (release = resolve));
  let holding = true;
  await page.route('**/upload', async (route) => {
    if (holding) {
      holding = false;
      await held;
    }
    await route.continue();
  });
  await page.getByLabel('Choose images…').setInputFiles(FIXTURES.map((f) => path.join(fixtures, f)));
  await page.locator('#file-list > li[data-state="uploading"]').first().waitFor({ timeout: UI_TIMEOUT });
  await axeCheck(page, 'compress: uploading');
  release();

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
  await axeCheck(page, 'compress: done');
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
  await axeCheck(page, 'compress: error');
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
  await axeCheck(alice, 'rooms: with messages');
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

check('Auto format and quality show the format, quality and score the server chose', async () => {
  const page = await (await browser.newContext({ viewport: { width: 1100, height: 900 } })).newPage();
  await signIn(page, 'auto');
  await page.goto(appUrl + '#compress');
  await page.getByLabel('Format').selectOption('auto');
  assert.equal(await page.getByLabel('Auto quality').isChecked(), true);
  assert.equal(await page.getByLabel('Auto quality').isDisabled(), true, 'Auto format always chooses the quality');
  const fixture = path.join(fixtures, 'horse.png');
  await page.getByLabel('Choose images…').setInputFiles(fixture);
  const item = page.locator('#file-list > li').first();
  await page.waitForFunction(() => document.querySelector('#file-list > li[data-state="done"], #file-list > li[data-state="error"]'), null, {
    timeout: JOB_TIMEOUT,
  });
  assert.equal(await item.getAttribute('data-state'), 'done', await item.textContent());
  const choice = item.locator('.auto-choice');
  const format = await choice.getAttribute('data-format');
  const quality = await choice.getAttribute('data-quality');
  const score = await choice.getAttribute('data-score');

  // What the page shows is what the server reports for the auto variant.
  const md5 = createHash('md5').update(await readFile(fixture)).digest('hex');
  const variants = await (await fetch(`${base}/status/${md5}`, { headers: apiHeaders() })).json();
  const auto = variants.find((v) => v.target !== undefined && v.status === 'done');
  assert.ok(auto, 'the server has a done auto variant: ' + JSON.stringify(variants));
  assert.equal(format, auto.format);
  assert.equal(quality, auto.quality === null ? '' : String(auto.quality));
  assert.equal(score === '' ? null : Number(score), auto.score === undefined ? null : auto.score);
  const names = { webp: 'WebP', jpg: 'JPEG', png: 'PNG', avif: 'AVIF' };
  let expected = `Auto chose ${names[auto.format]}, `;
  expected += auto.quality === null ? 'the original' : `quality ${auto.quality}`;
  assert.ok((await choice.textContent()).startsWith(expected), `${await choice.textContent()} starts with ${expected}`);
  if (auto.score !== undefined) assert.match(await choice.textContent(), new RegExp(`score ${auto.score.toFixed(2)} \\(target ${auto.target}`));
  assert.equal((await item.locator('.result-format').textContent()).trim(), names[auto.format]);

  const { name, bytes } = await downloadBytes(page, () => item.getByRole('link', { name: /^Download / }).click());
  const ext = { webp: 'webp', jpg: 'jpg', png: 'png', avif: 'avif' }[auto.format];
  assert.equal(name, 'horse.' + ext);
  assert.equal(bytes.length, auto.size, 'the download is the auto variant');
  await axeCheck(page, 'compress: auto result');
  await page.context().close();
});

async function chatConnect(page, user) {
  await signIn(page, user);
  await page.goto(appUrl + '#chat');
  const field = page.getByLabel('Your user id');
  if (authOn) assert.equal(await field.inputValue(), user, 'the user is the token\'s');
  else await field.fill(user);
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('#chat-conn', { hasText: 'Connected as ' + user }).waitFor({ timeout: UI_TIMEOUT });
}

function chatMessage(page, text) {
  return page.locator('#chat-messages li[data-id]', { has: page.locator('.msg-text', { hasText: text }) });
}

function chatIds(page) {
  return page.locator('#chat-messages li[data-id]').evaluateAll((items) => items.map((li) => Number(li.dataset.id)));
}

async function sendChat(page, text) {
  await page.getByLabel('Your message', { exact: true }).fill(text);
  await page.getByLabel('Your message', { exact: true }).press('Enter');
  await chatMessage(page, text).waitFor({ timeout: UI_TIMEOUT });
}

function watchErrors(page) {
  const problems = [];
  page.on('pageerror', (err) => problems.push(err.message));
  return problems;
}

check('two users chat: unread counts, ticks, typing, presence, an image, edit, delete, paging back', async () => {
  // Users of their own, so a run against a server that is already in use starts clean.
  const stamp = Date.now().toString(36);
  const ALICE = 'alice-' + stamp;
  const BOB = 'bob-' + stamp;
  const alice = await (await browser.newContext({ viewport: { width: 1100, height: 900 } })).newPage();
  const aliceErrors = watchErrors(alice);
  // Alice signs in, opens the chat with Bob and writes, with the keyboard alone.
  await signIn(alice, ALICE);
  await alice.goto(appUrl + '#chat');
  await alice.locator('#nav-chat').focus();
  await tabTo(alice, '#chat-user');
  if (!authOn) await alice.keyboard.type(ALICE);
  await alice.keyboard.press('Enter');
  await alice.locator('#chat-conn', { hasText: 'Connected as ' + ALICE }).waitFor({ timeout: UI_TIMEOUT });
  await axeCheck(alice, 'chat: connected, no chats');
  await tabTo(alice, '#chat-with');
  await alice.keyboard.type(BOB);
  await alice.keyboard.press('Enter');
  await alice.locator('#chat-peer', { hasText: BOB }).waitFor({ timeout: UI_TIMEOUT });
  await tabTo(alice, '#chat-text');
  await alice.keyboard.type('Hi Bob');
  await alice.keyboard.press('Enter');
  const first = chatMessage(alice, 'Hi Bob');
  await first.waitFor({ timeout: UI_TIMEOUT });
  assert.equal(await first.locator('.ticks').getAttribute('data-status'), 'sent');

  // Bob's page drops its connection when the test says so (below).
  const bobContext = await browser.newContext({ viewport: { width: 1100, height: 900 } });
  const bobSockets = [];
  let refuseBob = false;
  await bobContext.routeWebSocket(/\/ws\/chat/, (ws) => {
    if (refuseBob) {
      ws.close({ code: 1011, reason: 'refused by the test' });
      return;
    }
    ws.connectToServer();
    bobSockets.push(ws);
  });
  const bob = await bobContext.newPage();
  const bobErrors = watchErrors(bob);
  await chatConnect(bob, BOB);
  const bobsChat = bob.locator(`#chat-list button[data-chat="${ALICE}"]`);
  await bobsChat.locator('.badge[data-unread="1"]').waitFor({ timeout: UI_TIMEOUT });
  assert.match(await bobsChat.textContent(), new RegExp(`^${ALICE}1 unread`));
  await alice.locator('#chat-presence[data-presence="online"]', { hasText: BOB + ' is online' }).waitFor({ timeout: UI_TIMEOUT });
  await first.locator('.ticks[data-status="delivered"]').waitFor({ timeout: UI_TIMEOUT });
  await axeCheck(bob, 'chat: list with unread');

  await bobsChat.click();
  await chatMessage(bob, 'Hi Bob').waitFor({ timeout: UI_TIMEOUT });
  await bob.locator(`#chat-list button[data-chat="${ALICE}"] .badge`).waitFor({ state: 'detached', timeout: UI_TIMEOUT });
  await first.locator('.ticks[data-status="read"]').waitFor({ timeout: UI_TIMEOUT });

  // Typing shows on the other side, and goes with the message.
  await bob.getByLabel('Your message', { exact: true }).pressSequentially('Hel');
  await alice.locator('#chat-typing', { hasText: BOB + ' is typing' }).waitFor({ timeout: UI_TIMEOUT });
  await bob.getByLabel('Your message', { exact: true }).fill('Hello Alice');
  await bob.getByLabel('Your message', { exact: true }).press('Enter');
  await chatMessage(alice, 'Hello Alice').waitFor({ timeout: UI_TIMEOUT });
  await alice.waitForFunction(() => document.getElementById('chat-typing').textContent === '', null, { timeout: UI_TIMEOUT });
  await chatMessage(bob, 'Hello Alice').locator('.ticks[data-status="read"]').waitFor({ timeout: UI_TIMEOUT });

  // An image goes through the pipeline; both sides show its size and dimensions.
  await alice.getByLabel('Send image…').setInputFiles(path.join(fixtures, 'rocket.jpg'));
  let facts = null;
  for (const page of [alice, bob]) {
    const card = page.locator('#chat-messages li[data-id]', { has: page.locator('img.chat-image') });
    await card.locator('.image-info').waitFor({ timeout: JOB_TIMEOUT });
    const info = card.locator('.image-info');
    const shown = {
      width: Number(await info.getAttribute('data-width')),
      height: Number(await info.getAttribute('data-height')),
      size: Number(await info.getAttribute('data-size')),
    };
    assert.ok(shown.width > 0 && shown.height > 0 && shown.size > 0, 'size and dimensions are shown');
    assert.equal((await info.textContent()).trim(), `WebP · ${shown.width} × ${shown.height} · ${formatBytes(shown.size)}`);
    const img = card.locator('img.chat-image');
    const decoded = await img.evaluate(async (node) => {
      await node.decode();
      return { width: node.naturalWidth, height: node.naturalHeight, src: node.src };
    });
    assert.deepEqual({ width: decoded.width, height: decoded.height }, { width: shown.width, height: shown.height });
    const bytes = Buffer.from(await (await fetch(decoded.src)).arrayBuffer());
    assert.equal(bytes.length, shown.size, 'the image has the size shown');
    assert.deepEqual(webpDims(bytes), { width: shown.width, height: shown.height });
    if (facts) assert.deepEqual(shown, facts, 'both sides show the same facts');
    facts = shown;
  }

  // Alice edits her first message with the keyboard; Bob sees the new text.
  await first.getByRole('button', { name: /^Edit message/ }).focus();
  await alice.keyboard.press('Enter');
  await alice.keyboard.type('Hi Bob, edited');
  await alice.keyboard.press('Enter');
  await chatMessage(bob, 'Hi Bob, edited').locator('.edited').waitFor({ timeout: UI_TIMEOUT });
  await chatMessage(alice, 'Hi Bob, edited').waitFor({ timeout: UI_TIMEOUT });
  assert.equal(await alice.evaluate(() => document.activeElement.textContent), 'Edit', 'focus returns to the message');
  // Only one's own messages can be changed.
  assert.equal(await chatMessage(alice, 'Hello Alice').getByRole('button').count(), 0);

  // Deleting takes the message away on both sides.
  await sendChat(alice, 'a mistake');
  await chatMessage(bob, 'a mistake').waitFor({ timeout: UI_TIMEOUT });
  await chatMessage(alice, 'a mistake').getByRole('button', { name: /^Delete message/ }).focus();
  await alice.keyboard.press('Enter');
  await chatMessage(bob, 'a mistake').waitFor({ state: 'detached', timeout: UI_TIMEOUT });
  await chatMessage(alice, 'a mistake').waitFor({ state: 'detached', timeout: UI_TIMEOUT });

  // More than a page of messages: a second device of Bob's pages back.
  for (const text of ['one', 'two', 'three', 'four']) await sendChat(alice, 'count ' + text);
  await chatMessage(bob, 'count four').waitFor({ timeout: UI_TIMEOUT });
  const all = await chatIds(alice);
  const pageSize = (await (await fetch(base + '/', { headers: { Accept: 'application/json' } })).json()).chat.page_size;
  assert.ok(all.length > pageSize, `${all.length} messages are more than a page of ${pageSize}`);
  const laptop = await (await browser.newContext({ viewport: { width: 1100, height: 900 } })).newPage();
  await chatConnect(laptop, BOB);
  await laptop.locator(`#chat-list button[data-chat="${ALICE}"]`).click();
  await chatMessage(laptop, 'count four').waitFor({ timeout: UI_TIMEOUT });
  assert.deepEqual(await chatIds(laptop), all.slice(-pageSize), 'the newest page first');
  await laptop.getByRole('button', { name: 'Load earlier messages' }).click();
  await chatMessage(laptop, 'Hi Bob, edited').waitFor({ timeout: UI_TIMEOUT });
  assert.deepEqual(await chatIds(laptop), all, 'paging back gives every message once, in order');
  await laptop.getByRole('button', { name: 'Load earlier messages' }).waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
  await laptop.context().close();

  await alice.locator('img.chat-image').evaluate((img) => img.decode());
  await axeCheck(alice, 'chat: conversation with messages');
  await screenshot(alice, 'chat.png', true);
  await alice.setViewportSize({ width: 390, height: 844 });
  await noHorizontalScroll(alice, 'chat at phone width');
  await screenshot(alice, 'chat-phone.png', false);
  await alice.setViewportSize({ width: 1100, height: 900 });

  // Bob's connection drops and stays down while Alice writes three messages.
  assert.equal(bobSockets.length, 1);
  refuseBob = true;
  await bobSockets[0].close({ code: 4000, reason: 'dropped by the test' });
  await bob.locator('#chat-conn[data-state="retrying"]').waitFor({ timeout: UI_TIMEOUT });
  await alice.locator('#chat-presence[data-presence="offline"]', { hasText: BOB + ' is offline' }).waitFor({ timeout: UI_TIMEOUT });
  for (const n of [1, 2, 3]) await sendChat(alice, 'while away ' + n);
  assert.equal(await chatMessage(alice, 'while away 3').locator('.ticks').getAttribute('data-status'), 'sent');
  assert.equal(await chatMessage(bob, 'while away 1').count(), 0);

  // Back again: it resumes after the last event it saw, with no gaps and no repeats.
  refuseBob = false;
  await bob.locator('#chat-messages .notice', { hasText: 'Reconnected.' }).waitFor({ timeout: UI_TIMEOUT });
  await bob.locator('#chat-conn', { hasText: 'Connected as ' + BOB }).waitFor({ timeout: UI_TIMEOUT });
  await chatMessage(bob, 'while away 3').waitFor({ timeout: UI_TIMEOUT });
  assert.equal(bobSockets.length, 2, 'one new connection reached the server');
  const aliceIds = await chatIds(alice);
  assert.deepEqual(await chatIds(bob), aliceIds, 'Bob has every message once, in order');
  for (const text of ['Hello Alice', 'while away 1', 'while away 2']) assert.equal(await chatMessage(bob, text).count(), 1, text);
  await alice.locator('#chat-presence[data-presence="online"]').waitFor({ timeout: UI_TIMEOUT });
  await chatMessage(alice, 'while away 3').locator('.ticks[data-status="read"]').waitFor({ timeout: UI_TIMEOUT });
  await axeCheck(bob, 'chat: after reconnecting');

  assert.deepEqual(aliceErrors, [], 'no script errors on Alice\'s page');
  assert.deepEqual(bobErrors, [], 'no script errors on Bob\'s page');
  await bobContext.close();
  await alice.context().close();
});

if (authOn) {
  check('with auth on, a page without credentials says what it needs', async () => {
    const page = await (await browser.newContext({ viewport: { width: 1100, height: 900 } })).newPage();
    await page.goto(appUrl + '#compress');
    await page.locator('#compress-auth-note', { hasText: 'only with an API key' }).waitFor({ timeout: UI_TIMEOUT });
    await page.getByLabel('Choose images…').setInputFiles(path.join(fixtures, 'horse.png'));
    const item = page.locator('#file-list > li').first();
    await item.locator('.file-error').waitFor({ timeout: JOB_TIMEOUT });
    assert.match(await item.locator('.file-error').textContent(), /only accepts uploads with an API key\. Enter it in Settings/);
    await axeCheck(page, 'compress: API key needed');
    await page.getByRole('link', { name: 'Rooms', exact: true }).click();
    await page.locator('#rooms-auth-note', { hasText: 'only with a signed token' }).waitFor({ timeout: UI_TIMEOUT });
    await page.getByRole('link', { name: 'Chat', exact: true }).click();
    await page.locator('#chat-auth-note', { hasText: 'only with a signed token' }).waitFor({ timeout: UI_TIMEOUT });
    await axeCheck(page, 'chat: token needed');

    // Wrong credentials: the job API's 401 and the refused socket are explained.
    await page.getByRole('link', { name: 'Settings', exact: true }).click();
    await page.getByLabel('API key').fill('not-the-key');
    await page.getByLabel('Signed token').fill(signedToken('mallory', 'not-the-secret'));
    await page.getByRole('button', { name: 'Save' }).click();
    await page.locator('#settings-status', { hasText: 'A signed token for user mallory is set.' }).waitFor({ timeout: UI_TIMEOUT });
    assert.equal(await page.locator('#chat-auth-note').isHidden(), true);
    await page.getByRole('link', { name: 'Compress', exact: true }).click();
    await item.getByRole('button', { name: 'Try again' }).click();
    await item.locator('.file-error', { hasText: 'did not accept the API key' }).waitFor({ timeout: JOB_TIMEOUT });
    await page.getByRole('link', { name: 'Chat', exact: true }).click();
    assert.equal(await page.getByLabel('Your user id').inputValue(), 'mallory');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.locator('#chat-conn', { hasText: 'may not accept the signed token' }).waitFor({ timeout: UI_TIMEOUT });
    await axeCheck(page, 'chat: token refused');
    await page.getByRole('button', { name: 'Sign out' }).click();

    // The right ones: the same file goes through.
    await page.getByRole('link', { name: 'Settings', exact: true }).click();
    await page.getByLabel('API key').fill(apiKey);
    await page.getByLabel('Signed token').fill(signedToken('mallory'));
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('link', { name: 'Compress', exact: true }).click();
    assert.equal(await page.locator('#compress-auth-note').isHidden(), true);
    await item.getByRole('button', { name: 'Try again' }).click();
    await page.locator('#file-list > li[data-state="done"]').waitFor({ timeout: JOB_TIMEOUT });
    // Credentials stay with the tab: a reload keeps them.
    await page.reload();
    await page.getByRole('link', { name: 'Settings', exact: true }).click();
    assert.equal(await page.getByLabel('API key').inputValue(), apiKey);
    await page.context().close();
  });
}

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
  console.log(`axe-core: no serious or critical problems in ${axeChecked.length} page states: ${axeChecked.join('; ')}`);
  console.log(`${selected.length - failed} of ${selected.length} checks passed${authOn ? ' (auth on)' : ''}; screenshots in ${artifacts}`);
  return failed === 0 && selected.length > 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('e2e run failed to start:', err);
    process.exit(1);
  },
);
