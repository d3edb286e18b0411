// Rooms view: joins /ws/share/{room}?name=NAME, sends text and images in
// base64 chunks (SPEC section 3), rebuilds received images from their chunks
// into blob URLs, and reconnects with back-off when the connection drops.
'use strict';

(function () {
  const P = window.pixpress;
  const el = P.el;
  const FALLBACK_CHUNK_CHARS = 32768; // the protocol's default, for a server that does not say
  const SEND_BUFFER_LIMIT = 1 << 20; // pause sending while this much is unsent

  const joinForm = document.getElementById('join-form');
  const roomInput = document.getElementById('room-name');
  const nameInput = document.getElementById('display-name');
  const roomPanel = document.getElementById('room');
  const roomLabel = document.getElementById('room-label');
  const connStatus = document.getElementById('conn-status');
  const leaveButton = document.getElementById('leave-button');
  const messages = document.getElementById('messages');
  const textForm = document.getElementById('text-form');
  const textInput = document.getElementById('text-input');
  const sendButton = document.getElementById('send-button');
  const shareInput = document.getElementById('share-input');

  let session = null;

  function newSession(room, name) {
    return {
      room,
      name,
      ws: null,
      active: true,
      attempts: 0,
      timer: null,
      everOpened: false,
      incoming: new Map(), // uploadId or file name -> image being received
      mine: new Map(), // uploadId -> my upload in flight
      shown: new Set(), // keys of finished messages already on screen
      replay: new Set(), // keys a reconnect's history replay must not repeat
    };
  }

  // ---- connection ----------------------------------------------------------

  function setConn(state, text) {
    connStatus.dataset.state = state;
    connStatus.textContent = text;
    const open = state === 'open';
    textInput.disabled = !open;
    sendButton.disabled = !open;
    shareInput.disabled = !open;
  }

  function connect() {
    const s = session;
    const url = P.wsUrl('ws/share/' + encodeURIComponent(s.room), { name: s.name });
    setConn('connecting', s.attempts === 0 ? 'Connecting\u2026' : 'Reconnecting\u2026');
    const ws = P.openJsonSocket(url, (socket) => session === s && s.ws === socket, {
      open: () => {
        if (s.everOpened) notice('Reconnected.');
        s.everOpened = true;
        s.attempts = 0;
        s.replay = new Set(s.shown);
        setConn('open', 'Connected as ' + s.name);
      },
      json: (message) => handle(s, message),
      close: (event) => {
        s.ws = null;
        failInFlight(s, 'The connection dropped before the image was shared. Share it again.');
        for (const entry of s.incoming.values()) {
          if (entry.card && !entry.done) entry.card.remove();
        }
        s.incoming.clear();
        if (!s.active) return;
        const wait = P.reconnectDelay(s.attempts);
        s.attempts += 1;
        let reason = s.everOpened ? 'Connection lost' : 'Could not join the room';
        if (!s.everOpened && P.credentials().token) reason += ': the server may not accept the signed token (see Settings)';
        const why = event.reason ? ' (' + event.reason + ')' : '';
        setConn('retrying', reason + why + '. ' + P.retryIn(wait));
        s.timer = setTimeout(() => {
          if (session === s && s.active) connect();
        }, wait);
      },
    });
    s.ws = ws;
  }

  function send(message) {
    const ws = session && session.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  async function join(room, name) {
    const facts = await P.info;
    if (facts && facts.auth && facts.auth.token && !P.credentials().token) {
      document.getElementById('rooms-auth-note').hidden = false;
      document.getElementById('rooms-auth-note').querySelector('a')?.focus();
      return;
    }
    // With a signed token the server names the member after the token's user.
    name = P.tokenSubject() || name;
    leave();
    session = newSession(room, name);
    roomLabel.textContent = room;
    messages.replaceChildren();
    joinForm.hidden = true;
    roomPanel.hidden = false;
    try {
      localStorage.setItem('pixpress.name', name);
      localStorage.setItem('pixpress.room', room);
    } catch (_) {
      // private mode: nothing to remember
    }
    connect();
    textInput.focus();
  }

  function leave() {
    const s = session;
    if (!s) return;
    s.active = false;
    clearTimeout(s.timer);
    if (s.ws) s.ws.close(1000, 'left');
    for (const upload of s.mine.values()) URL.revokeObjectURL(upload.previewUrl);
    session = null;
    setConn('idle', '');
    roomPanel.hidden = true;
    joinForm.hidden = false;
  }

  // ---- messages from the server -------------------------------------------

  function handle(s, m) {
    switch (m.type) {
      case 'text':
        return onText(s, m);
      case 'imageUploadStart':
        return onStart(s, m);
      case 'imageUploadChunk':
        return onChunk(s, m);
      case 'imageUploadProgress':
        return onProgress(s, m);
      case 'imageUploadComplete':
        return onComplete(s, m);
      case 'imageUploadError':
        return onUploadError(s, m);
      case 'error':
        return notice('The server refused that: ' + (m.message || m.error || 'unknown error') + '.', true);
      default:
        return undefined;
    }
  }

  /** True once for a key already shown before a reconnect (history replay). */
  function replayed(s, key) {
    if (!s.replay.has(key)) return false;
    s.replay.delete(key);
    return true;
  }

  function onText(s, m) {
    const key = 't|' + m.from + '|' + m.ts + '|' + m.text;
    if (replayed(s, key)) return;
    s.shown.add(key);
    const meta = el('div', { class: 'msg-meta' }, el('span', { class: 'msg-from', text: m.from || 'someone' }), timeOf(m.ts));
    append(el('li', { class: 'msg msg-text-item' + (m.from === s.name ? ' mine' : '') }, meta, el('p', { class: 'msg-text', text: String(m.text) })));
  }

  function imageKey(m) {
    return 'i|' + (m.from || '') + '|' + (m.uploadId || m.filename) + '|' + m.size;
  }

  function streamKey(m) {
    return m.uploadId || m.filename;
  }

  /** My own upload this message is about, if any. */
  function mineFor(s, m) {
    if (m.uploadId) return s.mine.get(m.uploadId) || null;
    if (m.from && m.from !== s.name) return null;
    for (const upload of s.mine.values()) {
      if (upload.filename === m.filename && !upload.finished) return upload;
    }
    return null;
  }

  function onStart(s, m) {
    if (mineFor(s, m)) return; // the server's copy of my own upload
    // Someone else's upload announced as it begins: its processed copy
    // follows with a start of its own, which is what is shown.
    if (m.processed === false) return;
    const key = imageKey(m);
    const skip = s.replay.has(key);
    const entry = {
      key,
      skip,
      from: m.from || 'someone',
      filename: m.filename,
      mimeType: m.mimeType || 'application/octet-stream',
      size: m.size,
      chunks: [],
      received: 0,
      total: null,
      complete: null,
      done: false,
      card: null,
    };
    s.incoming.set(streamKey(m), entry);
    if (skip) return;
    entry.card = imageCard(entry.from, m.filename, entry.from === s.name);
    entry.card.setProgress(0, 'Receiving\u2026');
  }

  function onChunk(s, m) {
    const entry = s.incoming.get(streamKey(m));
    if (!entry || entry.done) return;
    const index = Number(m.chunkIndex);
    const total = Number(m.totalChunks);
    if (!Number.isInteger(index) || !Number.isInteger(total) || index < 0 || index >= total) return;
    entry.total = total;
    if (entry.chunks[index] === undefined) {
      entry.chunks[index] = String(m.data || '');
      entry.received += 1;
    }
    if (!entry.skip) {
      entry.card.setProgress(Math.round((entry.received / total) * 100), 'Receiving ' + entry.received + ' of ' + total + ' parts');
    }
    finishIncoming(s, entry);
  }

  function onComplete(s, m) {
    const upload = mineFor(s, m);
    if (upload) {
      upload.finished = true;
      s.mine.delete(upload.id);
      s.shown.add(imageKey(m));
      upload.card.setDone(m, null);
      return;
    }
    const entry = s.incoming.get(streamKey(m));
    if (!entry) {
      replayed(s, imageKey(m));
      return;
    }
    entry.complete = m;
    finishIncoming(s, entry);
  }

  function finishIncoming(s, entry) {
    if (!entry.complete || entry.total === null || entry.received < entry.total || entry.done) return;
    entry.done = true;
    for (const [key, value] of s.incoming) {
      if (value === entry) s.incoming.delete(key);
    }
    if (replayed(s, entry.key) || entry.skip) {
      if (entry.card) entry.card.remove();
      return;
    }
    s.shown.add(entry.key);
    let url = null;
    try {
      const bytes = P.fromBase64(entry.chunks.join(''));
      url = URL.createObjectURL(new Blob([bytes], { type: entry.complete.mimeType || entry.mimeType }));
    } catch (_) {
      entry.card.setError('This image arrived damaged and cannot be shown.');
      return;
    }
    entry.card.setDone(entry.complete, url);
  }

  function onProgress(s, m) {
    const upload = mineFor(s, m);
    const percent = Math.max(0, Math.min(100, Math.round(Number(m.progress) || 0)));
    // Someone else's upload on its way to the server is not shown: their
    // image appears, with its own progress, when the processed copy streams.
    if (!upload) return;
    upload.serverProgress = percent;
    upload.card.setProgress(percent, percent >= 100 ? 'Processing\u2026' : 'Uploading ' + percent + '%');
  }

  function onUploadError(s, m) {
    const upload = mineFor(s, m);
    const text = 'Not shared: ' + (m.error || 'the server refused this image') + '';
    if (upload) {
      upload.finished = true;
      s.mine.delete(upload.id);
      upload.card.setError(text);
    } else {
      const entry = s.incoming.get(streamKey(m));
      if (entry && entry.card && !entry.done) entry.card.remove();
      s.incoming.delete(streamKey(m));
      notice((m.filename ? m.filename + ': ' : '') + text, true);
    }
  }

  function failInFlight(s, text) {
    for (const upload of s.mine.values()) {
      upload.finished = true;
      upload.card.setError(text);
    }
    s.mine.clear();
  }

  // ---- sharing images --------------------------------------------------------

  async function share(file) {
    const s = session;
    if (!s || !s.ws) return;
    const id = Math.random().toString(36).slice(2) + Date.now().toString(36);
    const previewUrl = URL.createObjectURL(file);
    const upload = {
      id,
      filename: file.name || 'image',
      previewUrl,
      finished: false,
      serverProgress: null,
      card: imageCard(s.name, file.name || 'image', true, previewUrl),
    };
    s.mine.set(id, upload);
    upload.card.setProgress(0, 'Uploading 0%');
    const ws = s.ws;
    try {
      const facts = await P.info;
      const chunkChars = (facts && facts.share && facts.share.chunk_size) || FALLBACK_CHUNK_CHARS;
      const CHUNK_BYTES = Math.max(3, Math.floor(chunkChars / 4) * 3); // base64: 4 characters per 3 bytes
      const bytes = new Uint8Array(await file.arrayBuffer());
      const total = Math.max(1, Math.ceil(bytes.length / CHUNK_BYTES));
      const base = { filename: upload.filename, uploadId: id };
      if (!send({ type: 'imageUploadStart', ...base, mimeType: file.type || 'application/octet-stream', size: bytes.length })) {
        throw new Error('offline');
      }
      for (let index = 0; index < total; index++) {
        while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount > SEND_BUFFER_LIMIT) await P.delay(25);
        if (upload.finished) return; // refused or dropped meanwhile
        if (session !== s || s.ws !== ws || ws.readyState !== WebSocket.OPEN) throw new Error('offline');
        const data = P.toBase64(bytes.subarray(index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES));
        ws.send(JSON.stringify({ type: 'imageUploadChunk', ...base, chunkIndex: index, totalChunks: total, data }));
        if (upload.serverProgress === null) {
          const percent = Math.round(((index + 1) / total) * 100);
          upload.card.setProgress(percent, percent >= 100 ? 'Processing\u2026' : 'Uploading ' + percent + '%');
        }
      }
    } catch (_) {
      if (!upload.finished) {
        upload.finished = true;
        s.mine.delete(id);
        upload.card.setError('The connection dropped before the image was shared. Share it again.');
      }
    }
  }

  // ---- rendering -------------------------------------------------------------

  function timeOf(ts) {
    const seconds = Number(ts);
    if (!Number.isFinite(seconds) || seconds <= 0) return null;
    const date = new Date(seconds * 1000);
    return el('time', {
      datetime: date.toISOString(),
      text: date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }),
    });
  }

  function append(node) {
    const nearBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
    messages.append(node);
    if (nearBottom) messages.scrollTop = messages.scrollHeight;
  }

  function notice(text, isError) {
    append(el('li', { class: 'msg notice' + (isError ? ' error' : ''), role: isError ? 'alert' : null, text }));
  }

  /** A message with an image: progress first, then the picture and its facts. */
  function imageCard(from, filename, mine, previewUrl) {
    const status = el('span', { class: 'image-status' });
    const progress = el('progress', { max: '100', value: '0', 'aria-label': 'Progress of ' + filename });
    const body = el('div', { class: 'image-body' });
    if (previewUrl) body.append(el('img', { src: previewUrl, alt: 'Your image ' + filename, class: 'preview' }));
    const node = el(
      'li',
      { class: 'msg msg-image' + (mine ? ' mine' : ''), 'data-state': 'sending', 'data-filename': filename },
      el('div', { class: 'msg-meta' }, el('span', { class: 'msg-from', text: from }), el('span', { class: 'image-name', text: filename })),
      progress,
      status,
      body,
    );
    append(node);
    return {
      node,
      setProgress(percent, text) {
        progress.value = percent;
        status.textContent = text;
      },
      setDone(info, url) {
        node.dataset.state = 'done';
        progress.remove();
        status.remove();
        const facts = [
          P.formatName(info.mimeType),
          P.formatDims(info.width, info.height),
          P.formatBytes(info.size),
        ].filter(Boolean);
        const line = el('p', {
          class: 'image-info',
          'data-width': info.width,
          'data-height': info.height,
          'data-size': info.size,
          text: (url ? '' : 'Shared as ') + facts.join(' \u00b7 '),
        });
        if (url) {
          body.replaceChildren(
            el('img', { src: url, alt: 'Image ' + info.filename + ' from ' + (info.from || 'someone'), class: 'received' }),
            line,
            el('a', {
              href: url,
              download: info.filename,
              class: 'image-download',
              text: 'Download',
              'aria-label': 'Download ' + info.filename,
            }),
          );
        } else {
          body.append(line);
        }
      },
      setError(text) {
        node.dataset.state = 'error';
        progress.remove();
        status.remove();
        body.append(el('p', { class: 'image-error', role: 'alert', text }));
      },
      remove() {
        node.remove();
      },
    };
  }

  // ---- controls --------------------------------------------------------------

  joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const room = roomInput.value.trim();
    const name = nameInput.value.trim();
    if (!room || !name) return;
    join(room, name);
  });
  leaveButton.addEventListener('click', () => {
    leave();
    roomInput.focus();
  });
  textForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = textInput.value;
    if (!text.trim()) return;
    if (send({ type: 'text', text })) textInput.value = '';
  });
  shareInput.addEventListener('change', () => {
    for (const file of Array.from(shareInput.files || [])) share(file);
    shareInput.value = '';
  });
  try {
    nameInput.value = localStorage.getItem('pixpress.name') || '';
    roomInput.value = localStorage.getItem('pixpress.room') || '';
  } catch (_) {
    // no storage: start empty
  }
  /** With a signed token the member is the token's user: shown, not typed. */
  function applyToken() {
    const who = P.tokenSubject();
    nameInput.readOnly = Boolean(who);
    if (who) nameInput.value = who;
  }
  window.addEventListener('pixpress:credentials', applyToken);
  applyToken();
  // The server's limits on names and texts (GET /).
  P.info.then((facts) => {
    if (!facts) return;
    if (Number.isFinite(facts.max_name_chars)) {
      roomInput.maxLength = facts.max_name_chars;
      nameInput.maxLength = facts.max_name_chars;
    }
    if (facts.share && Number.isFinite(facts.share.max_text_bytes)) textInput.maxLength = facts.share.max_text_bytes;
  });
  setConn('idle', '');
})();
