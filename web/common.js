// pixpress web app: helpers shared by the Compress and Rooms views, and the
// hash router that switches between them. No dependencies, no build step.
'use strict';

window.pixpress = (function () {
  /** URL of an API path, relative to the app's own location (/app/ -> /). */
  function api(path) {
    return new URL('../' + path, document.baseURI).toString();
  }

  /** WebSocket URL of a server path on the same host. */
  function wsUrl(path) {
    const url = new URL('../' + path, document.baseURI);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.toString();
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

  // Server facts shown in hints (GET / with Accept: application/json).
  const info = fetch(api(''), { headers: { Accept: 'application/json' } })
    .then((res) => (res.ok ? res.json() : null))
    .catch(() => null);

  // Router: #compress and #rooms select a view; other fragments are ignored.
  const views = { compress: 'view-compress', rooms: 'view-rooms' };
  let current = null;
  function route() {
    const name = location.hash.replace(/^#/, '').split('?')[0];
    const chosen = views[name] ? name : current || 'compress';
    if (chosen === current) return;
    current = chosen;
    for (const [key, id] of Object.entries(views)) {
      document.getElementById(id).hidden = key !== chosen;
      const link = document.getElementById('nav-' + key);
      if (key === chosen) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    document.title = (chosen === 'rooms' ? 'Rooms' : 'Compress') + ' \u2013 pixpress';
  }
  window.addEventListener('hashchange', route);
  document.addEventListener('DOMContentLoaded', route);

  return { api, wsUrl, formatBytes, formatDims, formatName, el, decodeDims, delay, toBase64, fromBase64, info };
})();
