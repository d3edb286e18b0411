// Chat view: direct messages over /ws/chat (SPEC section 6). One socket per
// page; `subscribe` with the last event id seen, so a dropped connection
// resumes with exactly the events it missed. Responses replace what is
// shown; events after them apply on top, each keyed by message id, so a
// replayed event never shows twice.
'use strict';

(function () {
  const P = window.pixpress;
  const el = P.el;
  const TYPING_SEND_MS = 2000; // at most one typing event this often
  const TYPING_SHOW_MS = 4000; // "is typing" lasts this long after the last one

  const $ = (id) => document.getElementById(id);
  const loginForm = $('chat-login');
  const userInput = $('chat-user');
  const app = $('chat-app');
  const meLabel = $('chat-me');
  const connLine = $('chat-conn');
  const disconnectButton = $('chat-disconnect');
  const openForm = $('chat-open-form');
  const withInput = $('chat-with');
  const listEmpty = $('chat-list-empty');
  const list = $('chat-list');
  const conversation = $('chat-conversation');
  const peerLabel = $('chat-peer');
  const presenceLine = $('chat-presence');
  const earlierButton = $('chat-earlier');
  const messageList = $('chat-messages');
  const typingLine = $('chat-typing');
  const composer = $('chat-form');
  const textInput = $('chat-text');
  const sendButton = $('chat-send');
  const imageInput = $('chat-image');
  const notices = $('chat-notices');

  let session = null;

  function newSession(user) {
    return {
      user,
      ws: null,
      active: true,
      attempts: 0,
      timer: null,
      everSubscribed: false,
      lastEventId: 0,
      nextRequest: 1,
      pending: new Map(), // request id -> {resolve, reject}
      chats: new Map(), // chat id -> {id, unread, lastText, lastTime}
      presence: new Map(), // user id -> 'online' | 'offline'
      open: null, // the open conversation: {id, messages: Map, oldest, hasMore}
      typingTimer: null,
      lastTypingSent: 0,
    };
  }

  // ---- the socket --------------------------------------------------------

  function setConn(state, text) {
    connLine.dataset.state = state;
    connLine.textContent = text;
    const live = state === 'open';
    for (const control of [textInput, sendButton, imageInput, withInput, $('chat-open')]) control.disabled = !live;
  }

  function connect() {
    const s = session;
    const params = P.credentials().token ? {} : { user: s.user };
    setConn('connecting', s.attempts === 0 && !s.everSubscribed ? 'Connecting\u2026' : 'Reconnecting\u2026');
    const ws = P.openJsonSocket(P.wsUrl('ws/chat', params), (socket) => session === s && s.ws === socket, {
      open: () => subscribe(s),
      json: (frame) => onFrame(s, frame),
      close: (event, opened) => {
        s.ws = null;
        for (const waiter of s.pending.values()) waiter.reject(new Error('the connection dropped'));
        s.pending.clear();
        if (!s.active) return;
        const wait = P.reconnectDelay(s.attempts);
        s.attempts += 1;
        let reason = s.everSubscribed ? 'Connection lost' : 'Could not connect';
        if (!opened && P.credentials().token) reason += ': the server may not accept the signed token (see Settings)';
        else if (event.reason) reason += ' (' + event.reason + ')';
        setConn('retrying', reason + '. ' + P.retryIn(wait));
        s.timer = setTimeout(() => {
          if (session === s && s.active) connect();
        }, wait);
      },
    });
    s.ws = ws;
  }

  /** Sends a request and resolves with its response's payload. */
  function request(type, payload) {
    const s = session;
    return new Promise((resolve, reject) => {
      if (!s || !s.ws || s.ws.readyState !== WebSocket.OPEN) {
        reject(new Error('not connected'));
        return;
      }
      const id = 'r' + s.nextRequest++;
      s.pending.set(id, { resolve, reject });
      s.ws.send(JSON.stringify({ type: 'request', timestamp: Math.floor(Date.now() / 1000), id, payloadType: type, payload }));
    });
  }

  /** A client event (typing): never answered. */
  function clientEvent(type, payload) {
    const ws = session && session.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: 'event', timestamp: Math.floor(Date.now() / 1000), eventType: type, payload }));
    }
  }

  async function subscribe(s) {
    let answer;
    const first = !s.everSubscribed;
    try {
      // A first connection starts from now: what is already there comes
      // from getChats and getMessages, so the replay of older events is
      // skipped by id. A reconnection resumes after the last event seen.
      answer = await request('subscribe', { lastEventId: s.lastEventId });
    } catch (err) {
      // A dropped connection is said on the connection line and retried.
      if (session === s && err.code) notice(explain(err), true);
      return;
    }
    if (session !== s) return;
    const reload = first || answer.truncated === true;
    // Reloading starts from the server's newest id (lower than ours after a
    // server restart); what the replay brings is already in the reload.
    if (reload) s.lastEventId = Number(answer.lastEventId) || 0;
    if (s.everSubscribed) notice(answer.truncated ? 'Reconnected; some events were too old to replay, so the chat was reloaded.' : 'Reconnected.');
    s.everSubscribed = true;
    s.attempts = 0;
    setConn('open', 'Connected as ' + s.user);
    if (reload) {
      await loadChats(s);
      if (s.open) await openChat(s.open.id, { keepFocus: true });
    }
  }

  function onFrame(s, frame) {
    if (frame.type === 'response') {
      const waiter = s.pending.get(frame.id);
      const payload = frame.payload;
      if (payload && typeof payload === 'object' && !Array.isArray(payload) && typeof payload.error === 'string') {
        if (waiter) {
          s.pending.delete(frame.id);
          waiter.reject(Object.assign(new Error(payload.message || payload.error), { code: payload.error }));
        } else {
          notice(explain(Object.assign(new Error(payload.message || payload.error), { code: payload.error })), true);
        }
        return;
      }
      if (waiter) {
        s.pending.delete(frame.id);
        waiter.resolve(payload === undefined ? null : payload);
      }
      return;
    }
    if (frame.type !== 'event') return;
    const id = Number(frame.id);
    if (Number.isInteger(id) && id > 0) {
      // Events with ids reach a socket in order; one at or below the last
      // seen is a replay of something already applied.
      if (id <= s.lastEventId) return;
      s.lastEventId = id;
    }
    onEvent(s, frame.eventType, frame.payload || {}, Number(frame.timestamp) || 0);
  }

  function explain(err) {
    const byCode = {
      message_too_long: 'That message is too long for the server.',
      forbidden: 'Only the author can change a message, and only its recipient can mark it.',
      unknown_message: 'That message is no longer there.',
      too_large: 'That image is too large for the server.',
      unsupported_format: 'That file is not an image the server can read.',
      invalid_image: 'That image is damaged or too large to process.',
      too_many_pixels: 'That image has too many pixels for the server.',
      queue_full: 'The server is busy. Try again in a moment.',
      too_many_requests: 'Too many requests at once. Try again in a moment.',
    };
    return (byCode[err.code] || 'The server refused that') + (err.message && !byCode[err.code] ? ': ' + err.message + '.' : '');
  }

  // ---- events ------------------------------------------------------------

  function onEvent(s, type, p, timestamp) {
    switch (type) {
      case 'new':
        return onNew(s, p, timestamp);
      case 'edit':
        return onEdit(s, p, timestamp);
      case 'delete':
        return onDelete(s, p);
      case 'dlvrd':
      case 'read':
        return onMark(s, type, p);
      case 'typing':
        return onTyping(s, p);
      case 'online':
      case 'offline':
        return onPresence(s, p.userId, type);
      default:
        return undefined;
    }
  }

  function chatEntry(s, id) {
    let chat = s.chats.get(id);
    if (!chat) {
      chat = { id, unread: 0, lastText: '', lastTime: 0 };
      s.chats.set(id, chat);
    }
    return chat;
  }

  function onNew(s, p, timestamp) {
    const author = p.userId || p.from;
    const message = {
      messageId: Number(p.messageId),
      sender: author,
      message: p.message,
      attachments: p.attachments,
      createdAt: timestamp,
    };
    const chat = chatEntry(s, p.chatId);
    chat.lastText = summaryOf(message);
    chat.lastTime = timestamp;
    const mine = author === s.user;
    if (!mine) {
      chat.unread += 1;
      // Delivered as soon as it reaches this page; read when it is on screen.
      request('dlvrd', { chatId: p.chatId, messageId: message.messageId }).catch(() => {});
    }
    if (s.open && s.open.id === p.chatId) {
      upsertMessage(s, message);
      if (!mine) {
        hideTyping();
        markRead(s);
      }
    }
    renderList(s);
  }

  function onEdit(s, p, timestamp) {
    const open = s.open;
    if (!open || open.id !== p.chatId) return;
    const message = open.messages.get(Number(p.messageId));
    if (!message) return;
    message.message = p.message;
    if (p.attachments) message.attachments = p.attachments;
    message.updatedAt = timestamp;
    renderMessage(s, message);
  }

  function onDelete(s, p) {
    const open = s.open;
    if (!open || open.id !== p.chatId) return;
    const id = Number(p.messageId);
    open.messages.delete(id);
    const node = messageList.querySelector('li[data-id="' + id + '"]');
    if (node) node.remove();
  }

  function onMark(s, type, p) {
    // One event per message marked. My own marks lower my unread count;
    // marks by the other user tick my messages.
    if (p.from === s.user && type === 'read') {
      const chat = s.chats.get(p.chatId);
      if (chat && chat.unread > 0) chat.unread -= 1;
      renderList(s);
    }
    const open = s.open;
    if (!open || open.id !== p.chatId) return;
    const message = open.messages.get(Number(p.messageId));
    if (!message) return;
    const at = Number(p.timestamp) || 1;
    if (type === 'read') {
      message.read = message.read || at;
      message.dlvrd = message.dlvrd || at;
    } else {
      message.dlvrd = message.dlvrd || at;
    }
    renderMessage(s, message);
  }

  function onTyping(s, p) {
    const who = p.userId || p.from || p.chatId;
    if (!s.open || s.open.id !== p.chatId) return;
    typingLine.textContent = who + ' is typing\u2026';
    clearTimeout(s.typingTimer);
    s.typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
  }

  function hideTyping() {
    typingLine.textContent = '';
  }

  function onPresence(s, userId, state) {
    if (!userId) return;
    s.presence.set(userId, state);
    renderList(s);
    if (s.open && s.open.id === userId) showPresence(s);
  }

  function showPresence(s) {
    const state = s.presence.get(s.open.id) || 'unknown';
    presenceLine.dataset.presence = state;
    presenceLine.textContent = state === 'unknown' ? '' : s.open.id + ' is ' + state;
  }

  // ---- the chat list -------------------------------------------------------

  async function loadChats(s) {
    let chats;
    try {
      chats = await request('getChats', {});
    } catch (err) {
      if (session === s) notice(explain(err), true);
      return;
    }
    if (session !== s || !Array.isArray(chats)) return;
    for (const c of chats) {
      const chat = chatEntry(s, c.id);
      chat.unread = Number(c.unreadCount) || 0;
      chat.lastText = c.lastMessageText || (c.lastId ? 'Image' : '');
      chat.lastTime = Number(c.lastMessageTime) || 0;
      // What reached this page while it was away is delivered now.
      if (c.lastMessageAuthor && c.lastMessageAuthor !== s.user && c.lastMessageStatus === 'undelivered' && c.lastId) {
        request('dlvrd', { chatId: c.id, messageId: c.lastId }).catch(() => {});
      }
    }
    renderList(s);
  }

  function renderList(s) {
    const chats = Array.from(s.chats.values()).sort((a, b) => b.lastTime - a.lastTime || a.id.localeCompare(b.id));
    listEmpty.hidden = chats.length > 0;
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.chat : null;
    list.replaceChildren(
      ...chats.map((chat) => {
        const presence = s.presence.get(chat.id);
        const button = el(
          'button',
          {
            type: 'button',
            class: 'chat-item',
            'data-chat': chat.id,
            'aria-current': s.open && s.open.id === chat.id ? 'true' : null,
            onclick: () => openChat(chat.id),
          },
          el(
            'span',
            { class: 'chat-item-name' },
            presence ? el('span', { class: 'dot', 'data-presence': presence, 'aria-hidden': 'true' }) : null,
            chat.id,
            presence ? el('span', { class: 'visually-hidden', text: ', ' + presence }) : null,
          ),
          chat.unread > 0
            ? el('span', { class: 'badge', 'data-unread': chat.unread }, String(chat.unread), el('span', { class: 'visually-hidden', text: ' unread' }))
            : null,
          el('span', { class: 'chat-item-last', text: chat.lastText }),
        );
        return el('li', {}, button);
      }),
    );
    if (focused) {
      const again = list.querySelector('button[data-chat="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  }

  // ---- a conversation --------------------------------------------------------

  async function openChat(id, how) {
    const s = session;
    if (!s) return;
    const switching = !s.open || s.open.id !== id;
    if (switching) {
      s.open = { id, messages: new Map(), oldest: null, hasMore: false };
      peerLabel.textContent = id;
      messageList.replaceChildren();
      hideTyping();
      conversation.hidden = false;
      showPresence(s);
    }
    chatEntry(s, id);
    renderList(s);
    const pageSize = await pageSizeOf();
    let page;
    try {
      page = await request('getMessages', { chatId: id, count: pageSize });
    } catch (err) {
      notice(explain(err), true);
      return;
    }
    if (session !== s || !s.open || s.open.id !== id || !Array.isArray(page)) return;
    // The answer is the chat as it is now: drop what it no longer has
    // (deleted meanwhile) among the newest, and add or update the rest.
    const newest = new Set(page.map((m) => m.messageId));
    const cutoff = page.length > 0 ? page[0].messageId : 0;
    for (const [messageId] of s.open.messages) {
      if (messageId >= cutoff && !newest.has(messageId)) {
        s.open.messages.delete(messageId);
        const node = messageList.querySelector('li[data-id="' + messageId + '"]');
        if (node) node.remove();
      }
    }
    for (const m of page) upsertMessage(s, m);
    if (s.open.oldest === null || (page.length > 0 && page[0].messageId < s.open.oldest)) {
      s.open.oldest = page.length > 0 ? page[0].messageId : null;
      s.open.hasMore = page.length === pageSize;
    }
    earlierButton.hidden = !s.open.hasMore;
    markRead(s);
    if (switching && !(how && how.keepFocus)) textInput.focus();
  }

  async function loadEarlier() {
    const s = session;
    if (!s || !s.open || s.open.oldest === null) return;
    const open = s.open;
    const pageSize = await pageSizeOf();
    let page;
    try {
      page = await request('getMessages', { chatId: open.id, endId: open.oldest - 1, count: pageSize });
    } catch (err) {
      notice(explain(err), true);
      return;
    }
    if (session !== s || s.open !== open || !Array.isArray(page)) return;
    for (const m of page) upsertMessage(s, m);
    if (page.length > 0) open.oldest = page[0].messageId;
    open.hasMore = page.length === pageSize && open.oldest > 1;
    earlierButton.hidden = !open.hasMore;
    const first = messageList.querySelector('li[data-id]');
    if (!open.hasMore && first) first.querySelector('.msg-body')?.focus();
    else earlierButton.focus();
  }

  async function pageSizeOf() {
    const facts = await P.info;
    return (facts && facts.chat && facts.chat.page_size) || 50;
  }

  /** Marks everything from the other user up to the newest shown as read. */
  function markRead(s) {
    const open = s.open;
    if (!open || document.hidden) return;
    let newest = 0;
    for (const m of open.messages.values()) {
      if (m.sender !== s.user && !m.read && m.messageId > newest) newest = m.messageId;
    }
    if (newest > 0) request('read', { chatId: open.id, messageId: newest }).catch(() => {});
  }

  function upsertMessage(s, m) {
    const open = s.open;
    const id = Number(m.messageId);
    const known = open.messages.get(id);
    const message = { ...(known || {}), ...m, messageId: id };
    if (!message.sender) message.sender = m.from || m.userId;
    open.messages.set(id, message);
    renderMessage(s, message);
  }

  function summaryOf(m) {
    if (m.message) return m.message;
    return imageOf(m) ? 'Image' : '';
  }

  /** The first image attachment's facts, or the older `image` field's. */
  function imageOf(m) {
    const attachment = (m.attachments || []).find((a) => a && a.type === 'image');
    if (attachment) {
      const meta = attachment.payload || attachment.meta || {};
      return {
        url: attachment.url,
        name: attachment.filename || 'image',
        width: meta.width,
        height: meta.height,
        size: meta.size,
        mime: meta.mimetype,
      };
    }
    if (m.image && m.image.url) {
      return { url: m.image.url, name: m.image.md5 + '.webp', width: m.image.width, height: m.image.height, size: m.image.size, mime: 'image/webp' };
    }
    return null;
  }

  function imageUrl(url) {
    // The server names its images by absolute path (/chat/images/{md5}).
    return url && url.startsWith('/') ? P.api(url.slice(1)) : url;
  }

  function ticksOf(m) {
    if (m.read) return { state: 'read', symbol: '\u2713\u2713', text: 'Read' };
    if (m.dlvrd) return { state: 'delivered', symbol: '\u2713', text: 'Delivered' };
    return { state: 'sent', symbol: '\u00b7', text: 'Sent' };
  }

  function renderMessage(s, m) {
    const mine = m.sender === s.user;
    const image = imageOf(m);
    const meta = el(
      'div',
      { class: 'msg-meta' },
      el('span', { class: 'msg-from', text: mine ? 'You' : m.sender }),
      timeOf(m.createdAt),
      m.updatedAt ? el('span', { class: 'edited', text: '(edited)' }) : null,
    );
    const body = el('div', { class: 'msg-body', tabindex: '-1' });
    if (m.message) body.append(el('p', { class: 'msg-text', text: m.message }));
    if (image) {
      const facts = [P.formatName(image.mime), image.width && image.height ? P.formatDims(image.width, image.height) : '', Number.isFinite(image.size) ? P.formatBytes(image.size) : '']
        .filter(Boolean)
        .join(' \u00b7 ');
      body.append(
        el('img', { class: 'chat-image', src: imageUrl(image.url), alt: 'Image ' + image.name + ' from ' + (mine ? 'you' : m.sender) }),
        el('p', { class: 'image-info', 'data-width': image.width, 'data-height': image.height, 'data-size': image.size, text: facts }),
      );
    }
    const node = el('li', { class: 'msg chat-msg' + (mine ? ' mine' : ''), 'data-id': m.messageId }, meta, body);
    if (mine) {
      const ticks = ticksOf(m);
      meta.append(el('span', { class: 'ticks', 'data-status': ticks.state, title: ticks.text }, el('span', { 'aria-hidden': 'true', text: ticks.symbol }), el('span', { class: 'visually-hidden', text: ticks.text })));
      const actions = el('div', { class: 'msg-actions' });
      if (m.message !== undefined || !image) {
        actions.append(el('button', { type: 'button', class: 'link-button', text: 'Edit', 'aria-label': 'Edit message: ' + (m.message || ''), onclick: () => startEdit(s, m, node) }));
      }
      actions.append(el('button', { type: 'button', class: 'link-button', text: 'Delete', 'aria-label': 'Delete message: ' + summaryOf(m), onclick: () => removeMessage(s, m) }));
      node.append(actions);
    }
    const old = messageList.querySelector('li[data-id="' + m.messageId + '"]');
    if (old) {
      if (old.querySelector('form.edit-form')) return; // being edited: keep the form
      // Keep the keyboard where it was: on the same action of the new node.
      const focused = old.contains(document.activeElement) ? document.activeElement.textContent : null;
      old.replaceWith(node);
      if (focused !== null) {
        const again = Array.from(node.querySelectorAll('button')).find((b) => b.textContent === focused);
        if (again) again.focus();
      }
      return;
    }
    // In id order: before the first message with a larger id.
    const after = Array.from(messageList.querySelectorAll('li[data-id]')).find((li) => Number(li.dataset.id) > m.messageId);
    const nearBottom = messageList.scrollHeight - messageList.scrollTop - messageList.clientHeight < 80;
    if (after) messageList.insertBefore(node, after);
    else {
      messageList.append(node);
      if (nearBottom) messageList.scrollTop = messageList.scrollHeight;
    }
  }

  function startEdit(s, m, node) {
    const input = el('input', { class: 'edit-input', value: m.message || '', 'aria-label': 'New text of the message', autocomplete: 'off' });
    const form = el(
      'form',
      { class: 'edit-form composer' },
      input,
      el('button', { type: 'submit', class: 'button primary', text: 'Save' }),
      el('button', {
        type: 'button',
        class: 'button secondary',
        text: 'Cancel',
        onclick: () => {
          form.remove();
          renderMessage(s, s.open.messages.get(m.messageId) || m);
          focusMessage(m.messageId);
        },
      }),
    );
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const text = input.value;
      try {
        await request('edit', { chatId: s.open.id, messageId: m.messageId, message: text });
        form.remove();
        const current = s.open.messages.get(m.messageId);
        if (current) renderMessage(s, current);
        focusMessage(m.messageId);
      } catch (err) {
        notice(explain(err), true);
      }
    });
    node.append(form);
    input.focus();
    input.select();
  }

  function focusMessage(id) {
    const button = messageList.querySelector('li[data-id="' + id + '"] .link-button');
    if (button) button.focus();
  }

  async function removeMessage(s, m) {
    try {
      await request('delete', { chatId: s.open.id, messageId: m.messageId });
      textInput.focus();
    } catch (err) {
      notice(explain(err), true);
    }
  }

  async function sendText() {
    const s = session;
    if (!s || !s.open) return;
    const text = textInput.value;
    if (!text.trim()) return;
    const facts = await P.info;
    const max = facts && facts.chat ? facts.chat.max_message_len : null;
    if (max && new TextEncoder().encode(text).length > max) {
      notice('That message is longer than the server allows (' + P.formatBytes(max) + ').', true);
      return;
    }
    try {
      await request('new', { chatId: s.open.id, message: text });
      textInput.value = '';
    } catch (err) {
      notice(explain(err), true);
    }
  }

  async function sendImage(file) {
    const s = session;
    if (!s || !s.open) return;
    const facts = await P.info;
    // The image goes as base64 in one WebSocket message: both the image
    // limit and the message limit (4 characters per 3 bytes, and some room
    // for the envelope) bound it.
    const chat = (facts && facts.chat) || {};
    const byFrame = chat.max_frame_bytes ? Math.floor(((chat.max_frame_bytes - 4096) * 3) / 4) : Infinity;
    const max = Math.min(chat.max_image_bytes || Infinity, byFrame);
    if (file.size > max) {
      notice(file.name + ' is larger than the server accepts (' + P.formatBytes(max) + ').', true);
      return;
    }
    const pending = el('li', { class: 'msg notice sending', text: 'Sending ' + file.name + '\u2026' });
    messageList.append(pending);
    try {
      const data = P.toBase64(new Uint8Array(await file.arrayBuffer()));
      await request('new', { chatId: s.open.id, message: '', attachments: [{ type: 'image', filename: file.name, data }] });
      pending.remove();
    } catch (err) {
      pending.remove();
      notice(file.name + ': ' + explain(err), true);
    }
  }

  // ---- rendering helpers -----------------------------------------------------

  function timeOf(ts) {
    const seconds = Number(ts);
    if (!Number.isFinite(seconds) || seconds <= 0) return null;
    const date = new Date(seconds * 1000);
    return el('time', { datetime: date.toISOString(), text: date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) });
  }

  function notice(text, isError) {
    const node = el('li', { class: 'msg notice' + (isError ? ' error' : ''), role: isError ? 'alert' : null, text });
    if (session && session.open) messageList.append(node);
    else notices.replaceChildren(node);
  }

  // ---- sign in and out -------------------------------------------------------

  async function start(user) {
    const facts = await P.info;
    if (facts && facts.auth && facts.auth.token && !P.credentials().token) {
      $('chat-auth-note').hidden = false;
      return;
    }
    stop();
    session = newSession(user);
    meLabel.textContent = user;
    list.replaceChildren();
    notices.replaceChildren();
    messageList.replaceChildren();
    conversation.hidden = true;
    loginForm.hidden = true;
    app.hidden = false;
    try {
      localStorage.setItem('pixpress.chatUser', user);
    } catch (_) {
      // nothing to remember
    }
    connect();
    withInput.focus();
  }

  function stop() {
    const s = session;
    if (!s) return;
    s.active = false;
    clearTimeout(s.timer);
    clearTimeout(s.typingTimer);
    if (s.ws) s.ws.close(1000, 'signed out');
    session = null;
    setConn('idle', '');
    app.hidden = true;
    loginForm.hidden = false;
  }

  loginForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const user = P.tokenSubject() || userInput.value.trim();
    if (user) start(user);
  });
  disconnectButton.addEventListener('click', () => {
    stop();
    userInput.focus();
  });
  openForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const id = withInput.value.trim();
    if (!id || !session) return;
    if (id === session.user) {
      notice('A chat is with another user: enter their id.', true);
      return;
    }
    withInput.value = '';
    openChat(id);
  });
  earlierButton.addEventListener('click', loadEarlier);
  composer.addEventListener('submit', (event) => {
    event.preventDefault();
    sendText();
  });
  textInput.addEventListener('input', () => {
    const s = session;
    if (!s || !s.open || !textInput.value) return;
    const now = Date.now();
    if (now - s.lastTypingSent < TYPING_SEND_MS) return;
    s.lastTypingSent = now;
    clientEvent('typing', { chatId: s.open.id });
  });
  imageInput.addEventListener('change', () => {
    for (const file of Array.from(imageInput.files || [])) sendImage(file);
    imageInput.value = '';
  });
  document.addEventListener('visibilitychange', () => {
    if (session && !document.hidden) markRead(session);
  });

  /** With a signed token the user is the token's: shown, not typed. */
  function applyToken() {
    const who = P.tokenSubject();
    userInput.readOnly = Boolean(who);
    if (who) userInput.value = who;
  }
  window.addEventListener('pixpress:credentials', applyToken);
  try {
    userInput.value = localStorage.getItem('pixpress.chatUser') || '';
  } catch (_) {
    // start empty
  }
  applyToken();
  P.info.then((facts) => {
    if (facts && Number.isFinite(facts.max_name_chars)) {
      userInput.maxLength = facts.max_name_chars;
      withInput.maxLength = facts.max_name_chars;
    }
  });
  setConn('idle', '');
})();
