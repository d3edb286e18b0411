// pixpress web app: helpers shared by the views (Compress, Rooms, Chat,
// Settings), the sign-in credentials, and the hash router between the views. No dependencies, no build step.
'use strict';

window.pixpress = (function () {
  /** URL of an API path, relative to the app's own location (/app/ -> /). */
  function api(path) {
    return new URL('../' + path, document.baseURI).toString();
  }

  // ---- sign-in: an API key and a signed token, kept for this tab only ----

  const CREDENTIALS_KEY = 'pixpress.credentials';
  let unsaved = { apiKey: '', token: '' }; // when sessionStorage is unavailable

  /** The API key and signed token entered in Settings ('' when not set). */
  function credentials() {
    try {
      const raw = sessionStorage.getItem(CREDENTIALS_KEY);
      if (raw === null) return { ...unsaved };
      const saved = JSON.parse(raw);
      return {
        apiKey: typeof saved.apiKey === 'string' ? saved.apiKey : '',
        token: typeof saved.token === 'string' ? saved.token : '',
      };
    } catch (_) {
      return { ...unsaved };
    }
  }

  function saveCredentials(apiKey, token) {
    const value = { apiKey: String(apiKey || '').trim(), token: String(token || '').trim() };
    unsaved = value;
    try {
      if (value.apiKey || value.token) sessionStorage.setItem(CREDENTIALS_KEY, JSON.stringify(value));
      else sessionStorage.removeItem(CREDENTIALS_KEY);
    } catch (_) {
      // no storage: kept in memory until the page is reloaded
    }
    window.dispatchEvent(new CustomEvent('pixpress:credentials'));
  }

  /** Headers for the HTTP API: `Authorization: Bearer <API key>` when a key is set. */
  function authHeaders(headers) {
    const out = { ...(headers || {}) };
    const { apiKey } = credentials();
    if (apiKey) out.Authorization = 'Bearer ' + apiKey;
    return out;
  }

  /** The `sub` of the signed token, read (not verified) to show who one is, or ''. */
  function tokenSubject() {
    const part = credentials().token.split('.')[1];
    if (!part) return '';
    try {
      const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
      const bytes = fromBase64(b64.padEnd(Math.ceil(b64.length / 4) * 4, '='));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return typeof claims.sub === 'string' ? claims.sub : '';
    } catch (_) {
      return '';
    }
  }

  /** WebSocket URL of a server path on the same host, with `?token=` when a token is set. */
  function wsUrl(path, params) {
    const url = new URL('../' + path, document.baseURI);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
    }
    const { token } = credentials();
    if (token) url.searchParams.set('token', token);
    return url.toString();
  }

  // ---- WebSockets that come back after a drop (Rooms and Chat) ----

  const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

  /**
   * Opens a WebSocket to `url` and hands its JSON text frames to
   * `handlers.json`, for as long as `live(ws)` holds: a socket that has been
   * replaced or abandoned is ignored. `handlers.open()` runs once it is open,
   * `handlers.close(event, opened)` once it has closed.
   */
  function openJsonSocket(url, live, handlers) {
    const ws = new WebSocket(url);
    let opened = false;
    ws.onopen = () => {
      if (!live(ws)) return;
      opened = true;
      handlers.open();
    };
    ws.onmessage = (event) => {
      if (!live(ws) || typeof event.data !== 'string') return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      handlers.json(frame);
    };
    ws.onclose = (event) => {
      if (live(ws)) handlers.close(event, opened);
    };
    return ws;
  }

  /** How long to wait before reconnect attempt `attempts` (0 first), in ms: a growing step with 20% jitter. */
  function reconnectDelay(attempts) {
    const wait = BACKOFF_MS[Math.min(attempts, BACKOFF_MS.length - 1)];
    return Math.round(wait * (0.8 + Math.random() * 0.4));
  }

  /** "Trying again in N s…", for a delay in ms. */
  function retryIn(ms) {
    return 'Trying again in ' + Math.max(1, Math.round(ms / 1000)) + ' s\u2026';
  }

  /** Bytes in words a person reads at a glance (1 kB = 1000 bytes). */
  function formatBytes(n) {
    if (!Number.isFinite(n)) return '?';
    if (n < 1000) return n + ' bytes';
    if (n < 1000 * 1000) return (n / 1000).toFixed(n < 10000 ? 2 : 1) + ' kB';
    return (n / 1000 / 1000).toFixed(2) + ' MB';
  }

  function formatDims(w, h) {
    return w + ' \u00d7 ' + h;
  }

  /** Small element builder: el('p', {class: 'x', text: 'hi'}, child...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  /** Width and height of an image blob as the browser decodes it, or null. */
  function decodeDims(url) {
    return new Promise((resolve) => {
      const img = new Image();
      img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
      img.onerror = () => resolve(null);
      img.src = url;
    });
  }

  /** Wait `ms` milliseconds (retry back-off, never used to wait for results). */
  function delay(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** Base64 of bytes, built in slices so large files do not overflow the stack. */
  function toBase64(bytes) {
    let binary = '';
    const step = 0x6000; // multiple of 3: slices encode without padding
    for (let i = 0; i < bytes.length; i += step) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + step));
    }
    return btoa(binary);
  }

  function fromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  const FORMAT_NAMES = { webp: 'WebP', jpg: 'JPEG', jpeg: 'JPEG', png: 'PNG', avif: 'AVIF', gif: 'GIF' };
  function formatName(format) {
    if (!format) return '';
    const key = String(format).toLowerCase().replace(/^image\//, '');
    return FORMAT_NAMES[key] || key.toUpperCase();
  }

  // Server facts (GET / with Accept: application/json): limits, formats,
  // default qualities, chunk size and which credentials are needed.
  const info = fetch(api(''), { headers: { Accept: 'application/json' } })
    .then((res) => (res.ok ? res.json() : null))
    .catch(() => null);

  // Router: #compress, #rooms, #chat and #settings select a view; other
  // fragments are ignored.
  const views = {
    compress: { id: 'view-compress', title: 'Compress' },
    rooms: { id: 'view-rooms', title: 'Rooms' },
    chat: { id: 'view-chat', title: 'Chat' },
    settings: { id: 'view-settings', title: 'Settings' },
  };
  let shown = null;
  function route() {
    const name = location.hash.replace(/^#/, '').split('?')[0];
    const chosen = views[name] ? name : shown || 'compress';
    if (chosen === shown) return;
    shown = chosen;
    for (const [key, view] of Object.entries(views)) {
      document.getElementById(view.id).hidden = key !== chosen;
      const link = document.getElementById('nav-' + key);
      if (key === chosen) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = views[chosen].title + ' \u2013 pixpress';
    window.dispatchEvent(new CustomEvent('pixpress:view', { detail: chosen }));
  }
  window.addEventListener('hashchange', route);
  document.addEventListener('DOMContentLoaded', route);

  return {
    api,
    wsUrl,
    openJsonSocket,
    reconnectDelay,
    retryIn,
    authHeaders,
    credentials,
    saveCredentials,
    tokenSubject,
    formatBytes,
    formatDims,
    formatName,
    el,
    decodeDims,
    delay,
    toBase64,
    fromBase64,
    info,
  };
})();
