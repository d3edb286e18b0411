// Compress view: uploads files through the HTTP job API (POST /upload,
// GET /status/{md5}?wait=, GET /download/{md5}), shows each file's progress,
// its before and after sizes, a slider comparison, and the downloads.
'use strict';

(function () {
  const P = window.pixpress;
  const el = P.el;
  const MAX_PARALLEL = 3; // files in flight at once; the rest wait their turn
  const MAX_BUSY_RETRIES = 6; // automatic retries when the server is busy
  const EXTENSIONS = { webp: 'webp', jpg: 'jpg', jpeg: 'jpg', png: 'png', avif: 'avif' };

  const form = document.getElementById('compress-options');
  const formatInput = document.getElementById('opt-format');
  const qualityInput = document.getElementById('opt-quality');
  const qualityOutput = document.getElementById('opt-quality-value');
  const qualityAuto = document.getElementById('opt-quality-auto');
  const widthInput = document.getElementById('opt-width');
  const heightInput = document.getElementById('opt-height');
  const budgetInput = document.getElementById('opt-budget');
  const fileInput = document.getElementById('file-input');
  const dropzone = document.getElementById('dropzone');
  const list = document.getElementById('file-list');
  const summary = document.getElementById('compress-summary');
  const downloadAll = document.getElementById('download-all');
  const clearList = document.getElementById('clear-list');
  const limitsHint = document.getElementById('limits-hint');

  const items = [];
  const waiting = [];
  let running = 0;
  let qualityTouched = false;
  let maxUploadBytes = null;
  let defaultQuality = {}; // per format, from GET /

  /** A failed request, with what the server said about it. */
  class RequestError extends Error {
    constructor(status, body, retryAfter) {
      super((body && body.message) || (body && body.error) || 'HTTP ' + status);
      this.status = status;
      this.code = body && typeof body.error === 'string' ? body.error : null;
      this.serverMessage = body && typeof body.message === 'string' ? body.message : null;
      const seconds = Number.parseInt(retryAfter || '', 10);
      this.retryAfter = Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, 60) : null;
    }

    static async from(res) {
      let body = null;
      try {
        body = await res.json();
      } catch (_) {
        body = null;
      }
      return new RequestError(res.status, body, res.headers.get('Retry-After'));
    }

    get busy() {
      return this.status === 503 || this.status === 429;
    }
  }

  /** What went wrong, in words a person understands. */
  function explain(err) {
    if (!(err instanceof RequestError)) {
      return 'Something went wrong in the page: ' + (err && err.message ? err.message : String(err));
    }
    const detail = err.serverMessage ? ' (' + err.serverMessage + ')' : '';
    const byCode = { too_large: 413, unsupported_format: 415, invalid_image: 422, rate_limited: 429, queue_full: 503 };
    switch (byCode[err.code] || err.status) {
      case 0:
        return 'The server could not be reached. Check the connection and try again.';
      case 400:
        return 'The server did not accept these settings' + detail + '.';
      case 401:
      case 403:
        return P.credentials().apiKey
          ? 'The server did not accept the API key. Check it in Settings, then try again.'
          : 'This server only accepts uploads with an API key. Enter it in Settings, then try again.';
      case 404:
        return 'The server no longer has this file; add it again.';
      case 413: {
        const limit = maxUploadBytes ? ' The limit is ' + limitText() + '.' : '';
        return 'This file is too big for the server.' + limit;
      }
      case 415:
        return 'This file is not an image the server can read. It accepts JPEG, PNG, WebP, GIF, BMP and TIFF.';
      case 422:
        return 'This image is damaged or too large to process' + detail + '.';
      case 429:
        return 'Too many uploads in a short time. Wait a moment and try again.';
      case 503:
        return 'The server is busy: its queue is full. Try again in a moment.';
      default:
        return 'The server could not process this file' + detail + ' (error ' + err.status + ').';
    }
  }

  /** The upload limit as configured (`10MB` is 10 MiB on the server). */
  function limitText() {
    const mib = 1024 * 1024;
    if (maxUploadBytes >= mib && maxUploadBytes % mib === 0) return maxUploadBytes / mib + ' MiB';
    return P.formatBytes(maxUploadBytes);
  }

  function readOptions() {
    const format = formatInput.value;
    const auto = format === 'auto' || qualityAuto.checked;
    const options = { format, quality: auto ? 'auto' : Number.parseInt(qualityInput.value, 10) };
    const width = Number.parseInt(widthInput.value, 10);
    const height = Number.parseInt(heightInput.value, 10);
    const budgetKb = Number.parseFloat(budgetInput.value);
    if (width > 0) options.width = width;
    if (height > 0) options.height = height;
    if (budgetKb > 0) options.max_bytes = Math.round(budgetKb * 1000);
    return options;
  }

  function resultName(fileName, format) {
    const base = fileName.replace(/\.[^./\\]*$/, '') || 'image';
    return base + '.' + (EXTENSIONS[format] || format);
  }

  // ---- one file's card -------------------------------------------------

  function createItem(file, options) {
    const item = {
      file,
      options,
      state: 'waiting',
      busyRetries: 0,
      originalUrl: URL.createObjectURL(file),
      result: null,
    };
    const name = el('span', { class: 'file-name', text: file.name || 'unnamed file' });
    item.stateText = el('span', { class: 'file-state', text: 'Waiting' });
    item.progress = el('progress', { max: '100', value: '0', 'aria-label': 'Progress of ' + file.name });
    item.errorBox = el('p', { class: 'file-error', role: 'alert', hidden: true });
    item.resultBox = el('div', { class: 'file-result', hidden: true });
    item.retryButton = el('button', {
      type: 'button',
      class: 'button secondary retry',
      hidden: true,
      text: 'Try again',
      onclick: () => retry(item),
    });
    item.removeButton = el('button', {
      type: 'button',
      class: 'button secondary remove',
      text: 'Remove',
      'aria-label': 'Remove ' + file.name,
      onclick: () => remove(item),
    });
    item.node = el(
      'li',
      { class: 'file', 'data-state': 'waiting' },
      el('div', { class: 'file-head' }, name, item.stateText),
      item.progress,
      item.errorBox,
      item.resultBox,
      (item.actions = el('div', { class: 'file-actions' }, item.retryButton, item.removeButton)),
    );
    return item;
  }

  function setState(item, state, text, percent) {
    item.state = state;
    item.node.dataset.state = state;
    item.stateText.textContent = text;
    if (percent === null) item.progress.removeAttribute('value');
    else if (percent !== undefined) item.progress.value = percent;
  }

  function showError(item, err) {
    setState(item, 'error', 'Failed', 0);
    item.progress.hidden = true;
    item.errorBox.textContent = explain(err);
    item.errorBox.hidden = false;
    item.retryButton.hidden = false;
    updateSummary();
  }

  function retry(item) {
    item.errorBox.hidden = true;
    item.retryButton.hidden = true;
    item.progress.hidden = false;
    item.busyRetries = 0;
    setState(item, 'waiting', 'Waiting', 0);
    enqueue(item);
  }

  function remove(item) {
    const index = items.indexOf(item);
    if (index >= 0) items.splice(index, 1);
    const waitingIndex = waiting.indexOf(item);
    if (waitingIndex >= 0) waiting.splice(waitingIndex, 1);
    item.removed = true;
    if (item.xhr) item.xhr.abort();
    item.node.remove();
    URL.revokeObjectURL(item.originalUrl);
    if (item.result) URL.revokeObjectURL(item.result.url);
    updateSummary();
  }

  // ---- the job: upload, wait, download ----------------------------------

  function enqueue(item) {
    waiting.push(item);
    pump();
    updateSummary();
  }

  function pump() {
    while (running < MAX_PARALLEL && waiting.length > 0) {
      const item = waiting.shift();
      running += 1;
      process(item).finally(() => {
        running -= 1;
        pump();
        updateSummary();
      });
    }
  }

  async function process(item) {
    try {
      for (;;) {
        try {
          const accepted = await upload(item);
          item.md5 = accepted.md5;
          item.format = accepted.format || item.options.format;
          item.quality = accepted.quality !== undefined ? accepted.quality : item.options.quality;
          break;
        } catch (err) {
          if (!(err instanceof RequestError) || !err.busy || item.busyRetries >= MAX_BUSY_RETRIES) throw err;
          item.busyRetries += 1;
          const seconds = err.retryAfter !== null ? Math.max(err.retryAfter, 1) : 2 ** item.busyRetries;
          setState(item, 'waiting', 'Server busy, trying again in ' + seconds + ' s', 0);
          await P.delay(seconds * 1000);
          if (item.removed) return;
        }
      }
      if (item.removed) return;
      setState(item, 'queued', 'Queued', 65);
      await fetchResult(item);
      if (item.removed) return;
      await showResult(item);
    } catch (err) {
      if (!item.removed) showError(item, err);
    }
  }

  function upload(item) {
    return new Promise((resolve, reject) => {
      const data = new FormData();
      for (const [key, value] of Object.entries(item.options)) data.append(key, String(value));
      data.append('picture', item.file, item.file.name || 'image');
      const xhr = new XMLHttpRequest();
      item.xhr = xhr;
      xhr.open('POST', P.api('upload'));
      for (const [name, value] of Object.entries(P.authHeaders({ Accept: 'application/json' }))) {
        xhr.setRequestHeader(name, value);
      }
      setState(item, 'uploading', 'Uploading 0%', 0);
      xhr.upload.onprogress = (event) => {
        if (!event.lengthComputable || event.total === 0) return;
        const percent = Math.round((event.loaded / event.total) * 100);
        setState(item, 'uploading', 'Uploading ' + percent + '%', Math.round(percent * 0.6));
      };
      xhr.onload = () => {
        item.xhr = null;
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (_) {
          body = null;
        }
        if (xhr.status >= 200 && xhr.status < 300 && body && typeof body.md5 === 'string') resolve(body);
        else reject(new RequestError(xhr.status, body, xhr.getResponseHeader('Retry-After')));
      };
      xhr.onerror = () => {
        item.xhr = null;
        reject(new RequestError(0, null, null));
      };
      xhr.onabort = () => {
        item.xhr = null;
        reject(new RequestError(0, null, null));
      };
      xhr.send(data);
    });
  }

  /** The variants of this job that match what we asked for. */
  function ourVariants(item, variants) {
    const format = String(item.format).toLowerCase();
    let mine;
    if (item.quality === 'auto') {
      // An auto variant always carries its target, and says `auto` for what
      // it chooses until it is done.
      mine = variants.filter((v) => {
        if (v.target === undefined) return false;
        const vf = String(v.format).toLowerCase();
        if (format === 'auto') return v.status === 'done' || v.status === 'failed' || vf === 'auto';
        return vf === format;
      });
    } else {
      mine = variants.filter(
        (v) => v.target === undefined && String(v.format).toLowerCase() === format && (v.quality === undefined || v.quality === item.quality),
      );
    }
    return mine.length > 0 ? mine : variants;
  }

  /** Long-polls GET /status until our variant is no longer queued or processing. */
  async function waitForJob(item) {
    let wait = 0;
    for (;;) {
      const started = Date.now();
      const url = P.api('status/' + encodeURIComponent(item.md5) + (wait ? '?wait=' + wait : ''));
      let res;
      try {
        res = await fetch(url, { headers: P.authHeaders({ Accept: 'application/json' }), cache: 'no-store' });
      } catch (_) {
        throw new RequestError(0, null, null);
      }
      if (!res.ok) throw await RequestError.from(res);
      const variants = await res.json();
      if (item.removed) return [];
      const mine = ourVariants(item, Array.isArray(variants) ? variants : []);
      if (mine.some((v) => v.status === 'processing')) setState(item, 'processing', 'Processing', 85);
      else if (mine.some((v) => v.status === 'queued')) setState(item, 'queued', 'Queued', 70);
      else return mine;
      wait = 10;
      // A server that ignores ?wait= answers at once: poll gently instead.
      if (Date.now() - started < 200) await P.delay(300);
    }
  }

  function downloadQuery(item) {
    const query = new URLSearchParams();
    query.set('format', item.format);
    query.set('quality', String(item.quality));
    for (const key of ['width', 'height', 'max_bytes']) {
      if (item.options[key] !== undefined) query.set(key, String(item.options[key]));
    }
    return query.toString();
  }

  /** Where to download: the signed link the status handed out, when the
   * server signs its links (download.signed_urls), else the query built here. */
  function downloadUrl(item, variants) {
    const signed = variants.find((v) => v.status === 'done' && typeof v.url === 'string' && v.url.includes('signature='));
    if (signed) return P.api(signed.url.replace(/^\//, ''));
    return P.api('download/' + encodeURIComponent(item.md5) + '?' + downloadQuery(item));
  }

  async function fetchResult(item) {
    for (let attempt = 0; attempt < 5; attempt++) {
      const variants = await waitForJob(item);
      if (item.removed) return;
      setState(item, 'processing', 'Fetching the result', 92);
      let res;
      try {
        res = await fetch(downloadUrl(item, variants), {
          headers: P.authHeaders(),
          cache: 'no-store',
        });
      } catch (_) {
        throw new RequestError(0, null, null);
      }
      if (res.status === 409) continue; // not ready after all: wait again
      if (!res.ok) throw await RequestError.from(res);
      const blob = await res.blob();
      const variant = variants.find((v) => v.status === 'done' && v.size === blob.size) || null;
      // What an automatic choice settled on: the answer's headers, else the status.
      const chosenFormat = res.headers.get('X-Pixpress-Format') || (variant && variant.format) || item.format;
      const chosenQuality = res.headers.get('X-Pixpress-Quality');
      const chosenScore = res.headers.get('X-Pixpress-Score');
      item.result = {
        blob,
        size: blob.size,
        url: URL.createObjectURL(blob),
        name: resultName(item.file.name, chosenFormat),
        format: chosenFormat,
        auto:
          item.quality === 'auto'
            ? {
                quality: chosenQuality !== null ? Number(chosenQuality) : variant && Number.isFinite(variant.quality) ? variant.quality : null,
                score: chosenScore !== null ? Number(chosenScore) : variant && Number.isFinite(variant.score) ? variant.score : null,
                target: variant && Number.isFinite(variant.target) ? variant.target : null,
                targetMet: variant ? variant.target_met : undefined,
              }
            : null,
        width: variant ? variant.width : null,
        height: variant ? variant.height : null,
        originalSize: variant && variant.original_size ? variant.original_size : item.file.size,
      };
      return;
    }
    throw new RequestError(409, { message: 'the result was never ready' }, null);
  }

  async function showResult(item) {
    const result = item.result;
    const [after, before] = await Promise.all([P.decodeDims(result.url), P.decodeDims(item.originalUrl)]);
    if (result.width === null && after) {
      result.width = after.width;
      result.height = after.height;
    }
    const saved = result.originalSize > 0 ? Math.round((1 - result.size / result.originalSize) * 100) : 0;
    const savedText =
      saved >= 0
        ? el('strong', { class: 'saved', text: saved + '% saved' })
        : el('strong', { class: 'larger', text: -saved + '% larger' });

    const sizes = el(
      'p',
      { class: 'sizes' },
      'Before: ',
      el('data', { class: 'original-size', value: result.originalSize, text: P.formatBytes(result.originalSize) }),
      before ? ' (' + P.formatDims(before.width, before.height) + ')' : '',
      ' \u2192 After: ',
      el('data', { class: 'result-size', value: result.size, text: P.formatBytes(result.size) }),
      ' ',
      el('span', { class: 'result-format', text: P.formatName(result.format) }),
      result.width !== null
        ? el('span', {
            class: 'result-dims',
            'data-width': result.width,
            'data-height': result.height,
            text: ' (' + P.formatDims(result.width, result.height) + ')',
          })
        : '',
      ' \u00b7 ',
      savedText,
    );

    const download = el('a', {
      class: 'button primary download',
      href: result.url,
      download: result.name,
      text: 'Download',
      'aria-label': 'Download ' + result.name,
    });

    item.resultBox.replaceChildren(sizes, ...autoFacts(result), compareView(item, before, after));
    item.actions.prepend(download);
    item.resultBox.hidden = false;
    setState(item, 'done', 'Done', 100);
    item.progress.hidden = true;
  }

  /** What an automatic quality or format chose: format, quality and score. */
  function autoFacts(result) {
    const auto = result.auto;
    if (!auto) return [];
    const parts = ['Auto chose ' + P.formatName(result.format)];
    parts.push(auto.quality !== null ? 'quality ' + auto.quality : 'the original (smallest as it was)');
    let scoreText = 'no score';
    if (auto.score !== null) {
      scoreText = 'score ' + auto.score.toFixed(2);
      if (auto.target !== null) scoreText += ' (target ' + auto.target + (auto.targetMet === false ? ', not reached' : '') + ')';
    }
    parts.push(scoreText);
    return [
      el('p', {
        class: 'auto-choice',
        'data-format': result.format,
        'data-quality': auto.quality === null ? '' : auto.quality,
        'data-score': auto.score === null ? '' : auto.score,
        text: parts.join(', ') + '.',
      }),
    ];
  }

  /** Original and result on top of each other; a slider moves the split. */
  function compareView(item, before, after) {
    const shape = after || before;
    const frame = el('div', { class: 'compare-frame' });
    const ratio = shape && shape.height > 0 ? shape.width / shape.height : 4 / 3;
    frame.style.aspectRatio = String(ratio);
    // At most 360 px tall: narrow the frame instead of letterboxing.
    frame.style.maxWidth = Math.round(360 * ratio) + 'px';
    const afterImg = el('img', { class: 'compare-after', src: item.result.url, alt: 'Compressed ' + item.result.name });
    frame.append(afterImg);
    if (before) {
      frame.append(
        el('img', { class: 'compare-before', src: item.originalUrl, alt: 'Original ' + item.file.name }),
        el('span', { class: 'compare-divider', 'aria-hidden': 'true' }),
        el('span', { class: 'compare-label left', 'aria-hidden': 'true', text: 'Original' }),
      );
    }
    frame.append(el('span', { class: 'compare-label right', 'aria-hidden': 'true', text: 'Compressed' }));
    const figure = el('figure', { class: 'compare' }, frame);
    if (before) {
      const slider = el('input', {
        type: 'range',
        min: '0',
        max: '100',
        value: '50',
        'aria-label': 'Comparison split for ' + item.file.name + ': original on the left, compressed on the right',
      });
      slider.addEventListener('input', () => frame.style.setProperty('--pos', slider.value + '%'));
      const control = el('div', { class: 'compare-control' }, el('span', { text: 'Original' }), slider, el('span', { text: 'Compressed' }));
      control.style.maxWidth = 'max(' + frame.style.maxWidth + ', 16rem)';
      figure.append(control);
    } else {
      figure.append(el('figcaption', { text: 'The browser cannot show the original file, so only the result is shown.' }));
    }
    return figure;
  }

  // ---- list-wide controls ------------------------------------------------

  function updateSummary() {
    const count = (state) => items.filter((item) => item.state === state).length;
    const done = count('done');
    const failed = count('error');
    const busy = items.length - done - failed;
    if (items.length === 0) summary.textContent = 'No files yet.';
    else {
      const parts = [done + ' of ' + items.length + ' done'];
      if (busy) parts.push(busy + ' in progress');
      if (failed) parts.push(failed + ' failed');
      const saved = items.filter((item) => item.state === 'done');
      if (saved.length > 0) {
        const before = saved.reduce((sum, item) => sum + item.result.originalSize, 0);
        const after = saved.reduce((sum, item) => sum + item.result.size, 0);
        parts.push(P.formatBytes(before) + ' \u2192 ' + P.formatBytes(after));
      }
      summary.textContent = parts.join(', ') + '.';
    }
    downloadAll.disabled = done === 0;
    clearList.disabled = items.length === 0;
  }

  function addFiles(files) {
    const options = readOptions();
    for (const file of files) {
      const item = createItem(file, { ...options });
      items.push(item);
      list.append(item.node);
      enqueue(item);
    }
  }

  downloadAll.addEventListener('click', () => {
    const done = items.filter((item) => item.state === 'done');
    if (done.length === 0) return;
    const used = new Set();
    const entries = [];
    for (const item of done) {
      let name = item.result.name;
      for (let n = 2; used.has(name); n++) name = item.result.name.replace(/(\.[^.]*)?$/, '-' + n + '$1');
      used.add(name);
      entries.push({ name, blob: item.result.blob });
    }
    window.pixpressZip(entries).then((zip) => {
      const url = URL.createObjectURL(zip);
      const link = el('a', { href: url, download: 'pixpress-images.zip', hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    });
  });

  clearList.addEventListener('click', () => {
    for (const item of items.slice()) remove(item);
  });

  fileInput.addEventListener('change', () => {
    addFiles(Array.from(fileInput.files || []));
    fileInput.value = '';
  });

  for (const name of ['dragenter', 'dragover']) {
    dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.add('dragging');
    });
  }
  for (const name of ['dragleave', 'drop']) {
    dropzone.addEventListener(name, () => dropzone.classList.remove('dragging'));
  }
  dropzone.addEventListener('drop', (event) => {
    event.preventDefault();
    const files = Array.from((event.dataTransfer && event.dataTransfer.files) || []);
    if (files.length > 0) addFiles(files);
  });
  // A file dropped beside the drop zone should not replace the page.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());

  qualityInput.addEventListener('input', () => {
    qualityTouched = true;
    qualityOutput.value = qualityInput.value;
  });
  /** Auto format chooses the quality too; auto quality has no slider. */
  function syncQuality() {
    const autoFormat = formatInput.value === 'auto';
    if (autoFormat) qualityAuto.checked = true;
    qualityAuto.disabled = autoFormat;
    qualityInput.disabled = qualityAuto.checked;
    qualityOutput.value = qualityAuto.checked ? 'Auto' : qualityInput.value;
  }
  formatInput.addEventListener('change', () => {
    if (!qualityTouched && defaultQuality[formatInput.value] !== undefined) {
      qualityInput.value = defaultQuality[formatInput.value];
    }
    if (formatInput.value !== 'auto' && qualityAuto.disabled) qualityAuto.checked = false;
    syncQuality();
  });
  qualityAuto.addEventListener('change', syncQuality);
  form.addEventListener('submit', (event) => event.preventDefault());

  P.info.then((info) => {
    if (!info) return;
    if (Number.isFinite(info.max_upload_size_bytes)) {
      maxUploadBytes = info.max_upload_size_bytes;
      limitsHint.textContent = 'JPEG, PNG, WebP, GIF, BMP or TIFF, up to ' + limitText() + ' each.';
    }
    if (Array.isArray(info.formats)) {
      for (const option of Array.from(formatInput.options)) {
        option.disabled = option.value !== 'auto' && !info.formats.includes(option.value);
      }
    }
    if (info.auto_quality && Number.isFinite(info.auto_quality.target)) {
      document.getElementById('auto-hint').textContent =
        'Auto quality picks the lowest quality whose result still scores ' +
        info.auto_quality.target +
        ' (of 100) on a perceptual scale; Auto format also picks the format.';
    }
    if (info.default_quality && typeof info.default_quality === 'object') {
      defaultQuality = info.default_quality;
      if (!qualityTouched && defaultQuality[formatInput.value] !== undefined) {
        qualityInput.value = defaultQuality[formatInput.value];
        syncQuality();
      }
    }
  });
})();
