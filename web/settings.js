// Settings view: the API key (sent as `Authorization: Bearer` on HTTP) and
// the signed token (sent as `?token=` on WebSockets), kept in this tab's
// sessionStorage; and the notes the other views show when the server asks
// for one of them and none is set.
'use strict';

(function () {
  const P = window.pixpress;
  const form = document.getElementById('settings-form');
  const keyInput = document.getElementById('set-api-key');
  const tokenInput = document.getElementById('set-token');
  const clearButton = document.getElementById('settings-clear');
  const status = document.getElementById('settings-status');
  const needs = document.getElementById('settings-needs');

  let facts = null;

  function describe() {
    const { apiKey, token } = P.credentials();
    const parts = [];
    parts.push(apiKey ? 'An API key is set.' : 'No API key is set.');
    if (token) {
      const who = P.tokenSubject();
      parts.push(who ? 'A signed token for user ' + who + ' is set.' : 'A signed token is set, but it names no user.');
    } else {
      parts.push('No signed token is set.');
    }
    status.textContent = parts.join(' ');
  }

  /** The notes on the other views about what this server asks for. */
  function updateNotes() {
    if (!facts || !facts.auth) return;
    const { apiKey, token } = P.credentials();
    const notes = [
      ['compress-auth-note', facts.auth.api_key && !apiKey, 'This server compresses only with an API key.'],
      ['rooms-auth-note', facts.auth.token && !token, 'This server lets you join rooms only with a signed token.'],
      ['chat-auth-note', facts.auth.token && !token, 'This server lets you chat only with a signed token.'],
    ];
    for (const [id, show, text] of notes) {
      const node = document.getElementById(id);
      if (!node) continue;
      node.hidden = !show;
      node.replaceChildren(text + ' ', P.el('a', { href: '#settings', text: 'Enter it in Settings.' }));
    }
    const asked = [];
    if (facts.auth.api_key) asked.push('an API key to compress images');
    if (facts.auth.token) asked.push('a signed token to join rooms and chat');
    if (asked.length > 0) {
      needs.textContent =
        'This server asks for ' + asked.join(' and ') + '. What you enter here is kept in this browser tab only and forgotten when the tab is closed.';
    }
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    P.saveCredentials(keyInput.value, tokenInput.value);
  });
  clearButton.addEventListener('click', () => {
    keyInput.value = '';
    tokenInput.value = '';
    P.saveCredentials('', '');
    keyInput.focus();
  });
  window.addEventListener('pixpress:credentials', () => {
    describe();
    updateNotes();
  });

  const saved = P.credentials();
  keyInput.value = saved.apiKey;
  tokenInput.value = saved.token;
  describe();
  P.info.then((info) => {
    facts = info;
    updateNotes();
  });
})();
