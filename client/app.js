/**
 * Cascade bundled client.
 *
 * Joins a room on a Cascade SFU using signaling protocol version 1
 * (docs/PROTOCOL.md): one WebSocket at `/ws` carrying JSON messages, and two
 * RTCPeerConnections per participant, so that each connection has exactly one
 * offerer and offers never cross:
 *
 *   - publish PC:   the client offers; it sends our microphone and camera
 *                   (`sendonly` transceivers) to the server.
 *   - subscribe PC: the server offers (first right after `joined`, then again
 *                   whenever the room's set of tracks changes); the client
 *                   answers on the same connection every time. It receives
 *                   everybody else's tracks, plus a data channel.
 *
 * Remote tracks are mapped to participants by the `tracks` table of the most
 * recent `subscribe_offer` (mid -> participant_id); `ontrack`'s
 * `streams[0].id` (= participant_id) is the fallback when a server sends no table.
 *
 * Incoming messages are handled strictly one at a time (a promise queue), so a
 * re-offer is never applied while the previous one is still being answered.
 *
 * URL parameters: `?room=NAME` prefills the room, `?room=NAME&name=ME` joins at once.
 *
 * Test hooks: `data-testid` attributes on the page, remote tiles carry
 * `data-participant-id`, `data-participant-name`, `data-video-muted`,
 * `data-audio-muted` and `data-connection-state`; `window.cascade` exposes
 * `participantId`, `publishPc`, `subscribePc` and `tracksByMid`.
 *
 * Plain browser JavaScript, no build step, no external resources.
 */
(() => {
  'use strict';

  const PROTOCOL_VERSION = 1;
  const ROOM_RE = /^[A-Za-z0-9_.-]{1,64}$/;
  const MAX_NAME_CHARS = 64;
  // eslint-disable-next-line no-control-regex
  const CONTROL_CHARS_RE = /[\u0000-\u001f\u007f-\u009f]/;
  const PING_INTERVAL_MS = 20000;
  const MAX_ERRORS_SHOWN = 5;
  /** Loopback and LAN deployments need no STUN; Cascade is ICE-lite with host candidates. */
  const RTC_CONFIG = { iceServers: [] };
  /** Publish order fixes the publish mids: audio gets "0", video "1" in practice. */
  const KIND_ORDER = ['audio', 'video'];

  const byId = (id) => document.getElementById(id);
  const ui = {
    joinScreen: byId('join-screen'),
    joinForm: byId('join-form'),
    roomInput: byId('room-input'),
    nameInput: byId('name-input'),
    joinButton: byId('join-button'),
    callScreen: byId('call-screen'),
    grid: byId('grid'),
    roomLabel: byId('room-label'),
    status: byId('status'),
    errors: byId('errors'),
    micButton: byId('toggle-mic'),
    cameraButton: byId('toggle-camera'),
    leaveButton: byId('leave'),
    audioUnlock: byId('audio-unlock'),
    audioUnlockButton: byId('audio-unlock-button'),
    tileTemplate: byId('tile-template'),
  };

  /** The current call, or null on the join screen. Replaced on every join. */
  let session = null;

  // ---------------------------------------------------------------------------
  // Logging and errors
  // ---------------------------------------------------------------------------

  function log(...args) {
    console.log('[cascade]', ...args);
  }

  /** Shows an error banner in the page (and the console); keeps the last few. */
  function showError(text) {
    console.error('[cascade] error:', text);
    const item = document.createElement('div');
    item.className = 'error';
    item.dataset.testid = 'error';
    const message = document.createElement('span');
    message.textContent = text;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'dismiss';
    close.textContent = '×';
    close.title = 'Dismiss';
    close.addEventListener('click', () => item.remove());
    item.append(message, close);
    ui.errors.append(item);
    while (ui.errors.children.length > MAX_ERRORS_SHOWN) ui.errors.firstElementChild.remove();
  }

  function clearErrors() {
    ui.errors.replaceChildren();
  }

  function errorText(err) {
    return err && err.message ? `${err.name || 'Error'}: ${err.message}` : String(err);
  }

  // ---------------------------------------------------------------------------
  // Session state
  // ---------------------------------------------------------------------------

  function newSession(room, name) {
    return {
      room,
      name,
      ws: null,
      participantId: null,
      closed: false,
      pingTimer: null,
      /** Serializes handling of incoming messages. */
      queue: Promise.resolve(),
      localStream: null,
      localTile: null,
      publishPc: null,
      /** kind -> RTCRtpTransceiver on the publish PC. */
      publishTransceivers: new Map(),
      publishAnswered: false,
      subscribePc: null,
      dataChannel: null,
      /** mid -> {mid, participant_id, track_id, kind} from the latest subscribe_offer. */
      subscribeTracks: new Map(),
      /** Whether the latest subscribe_offer carried a `tracks` table at all. */
      haveTrackTable: false,
      /** mid -> participant id learned from ontrack's streams[0].id (fallback). */
      midOwners: new Map(),
      /** Our own candidates, held per PC until its offer/answer has been sent. */
      outgoing: { publish: { ready: false, held: [] }, subscribe: { ready: false, held: [] } },
      /** Server candidates held per PC until its remote description is set. */
      incoming: { publish: [], subscribe: [] },
      /** participant id -> {id, name, tracks: Map(track id -> Track), tile} */
      participants: new Map(),
    };
  }

  function isCurrent(s) {
    return session === s && !s.closed;
  }

  // ---------------------------------------------------------------------------
  // Join / leave
  // ---------------------------------------------------------------------------

  /** Checks the join inputs; returns an error text or null. */
  function validateJoin(room, name) {
    if (!ROOM_RE.test(room)) {
      return 'Room must be 1–64 characters of letters, digits, "_", "-" or ".".';
    }
    const chars = [...name].length;
    if (chars < 1 || chars > MAX_NAME_CHARS) return `Name must be 1–${MAX_NAME_CHARS} characters.`;
    if (CONTROL_CHARS_RE.test(name)) return 'Name must not contain control characters.';
    return null;
  }

  async function join(room, name) {
    if (session) return;
    const problem = validateJoin(room, name);
    if (problem) {
      showError(problem);
      return;
    }
    clearErrors();
    const s = newSession(room, name);
    session = s;
    ui.joinButton.disabled = true;
    showCallScreen(s);
    rememberRoomInUrl(room);
    s.localStream = await getLocalMedia();
    if (!isCurrent(s)) {
      stopStream(s.localStream);
      return;
    }
    addLocalTile(s);
    connectSocket(s);
  }

  /** Leaves on the user's request: tells the server, then tears everything down. */
  function leave() {
    const s = session;
    if (!s) return;
    send(s, { type: 'leave' });
    teardown(s);
    log('left room', s.room);
  }

  /** Releases everything the session holds and returns to the join screen. */
  function teardown(s) {
    if (s.closed) return;
    s.closed = true;
    clearInterval(s.pingTimer);
    for (const pc of [s.publishPc, s.subscribePc]) {
      if (pc) pc.close();
    }
    stopStream(s.localStream);
    if (s.ws && s.ws.readyState <= WebSocket.OPEN) s.ws.close(1000, 'leave');
    for (const p of s.participants.values()) detachMedia(p.tile);
    if (s.localTile) detachMedia(s.localTile);
    if (session === s) session = null;
    showJoinScreen();
  }

  function stopStream(stream) {
    if (stream) stream.getTracks().forEach((t) => t.stop());
  }

  /** Camera and microphone, falling back to whichever one works, or none. */
  async function getLocalMedia() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      showError('Camera and microphone need a secure page (https or localhost); joining without publishing.');
      return null;
    }
    const video = { width: { ideal: 640 }, height: { ideal: 480 } };
    const attempts = [{ audio: true, video }, { audio: true }, { video }];
    let lastError = null;
    for (const constraints of attempts) {
      try {
        return await navigator.mediaDevices.getUserMedia(constraints);
      } catch (err) {
        lastError = err;
      }
    }
    showError(`Camera and microphone unavailable (${errorText(lastError)}); joining without publishing.`);
    return null;
  }

  // ---------------------------------------------------------------------------
  // WebSocket signaling
  // ---------------------------------------------------------------------------

  function socketUrl() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.host}/ws`;
  }

  function connectSocket(s) {
    const ws = new WebSocket(socketUrl());
    s.ws = ws;
    updateStatus();
    ws.onopen = () => {
      log('socket open');
      send(s, { type: 'join', version: PROTOCOL_VERSION, room: s.room, name: s.name });
      s.pingTimer = setInterval(() => send(s, { type: 'ping' }), PING_INTERVAL_MS);
      updateStatus();
    };
    ws.onmessage = (event) => onSocketMessage(s, event);
    ws.onerror = () => log('socket error event');
    ws.onclose = (event) => onSocketClose(s, event);
  }

  function send(s, msg) {
    if (s.ws && s.ws.readyState === WebSocket.OPEN) {
      s.ws.send(JSON.stringify(msg));
    }
  }

  function onSocketClose(s, event) {
    log('socket closed', event.code, event.reason);
    if (!isCurrent(s)) return;
    const reason = event.reason ? `: ${event.reason}` : '';
    showError(`Connection to the server closed (code ${event.code}${reason}).`);
    teardown(s);
  }

  /** Parses a frame and queues it behind the messages before it. */
  function onSocketMessage(s, event) {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch (err) {
      showError(`Unreadable message from the server: ${errorText(err)}`);
      return;
    }
    s.queue = s.queue
      .then(() => dispatch(s, msg))
      .catch((err) => {
        if (isCurrent(s)) showError(`Handling "${msg.type}" failed: ${errorText(err)}`);
      });
  }

  const HANDLERS = {
    joined: onJoined,
    publish_answer: onPublishAnswer,
    subscribe_offer: onSubscribeOffer,
    participant_joined: (s, m) => addParticipant(s, m.participant),
    participant_left: (s, m) => removeParticipant(s, m.participant_id),
    track_published: (s, m) => setTrack(s, m.participant_id, m.track),
    track_updated: (s, m) => setTrack(s, m.participant_id, m.track),
    track_removed: onTrackRemoved,
    candidate: onRemoteCandidate,
    error: onServerError,
    pong: () => {},
  };

  async function dispatch(s, msg) {
    if (!isCurrent(s)) return;
    const handler = msg && typeof msg.type === 'string' ? HANDLERS[msg.type] : undefined;
    if (!handler) {
      log('ignoring unknown message', msg);
      return;
    }
    if (msg.type !== 'pong' && msg.type !== 'candidate') log('<-', msg.type);
    await handler(s, msg);
  }

  // ---------------------------------------------------------------------------
  // Server messages
  // ---------------------------------------------------------------------------

  async function onJoined(s, msg) {
    if (msg.version !== PROTOCOL_VERSION) {
      log(`server speaks protocol version ${msg.version}, we speak ${PROTOCOL_VERSION}`);
    }
    s.participantId = msg.participant_id;
    ui.roomLabel.textContent = `Room: ${msg.room || s.room}`;
    for (const p of msg.participants || []) addParticipant(s, p);
    log('joined', s.room, 'as', s.participantId);
    await startPublishing(s);
  }

  function onServerError(s, msg) {
    showError(`Server error ${msg.code || '?'}: ${msg.message || ''}`);
    if (msg.code === 'fatal') teardown(s);
  }

  function onTrackRemoved(s, msg) {
    const p = s.participants.get(msg.participant_id);
    if (!p) return;
    p.tracks.delete(msg.track_id);
    renderIndicators(p);
  }

  /** Applies a server trickle candidate now, or holds it until the PC can take it. */
  async function onRemoteCandidate(s, msg) {
    const pcName = msg.pc === 'subscribe' ? 'subscribe' : 'publish';
    const pc = pcName === 'subscribe' ? s.subscribePc : s.publishPc;
    if (!pc || !pc.remoteDescription) {
      s.incoming[pcName].push(msg.candidate);
      return;
    }
    await addRemoteCandidate(pc, msg.candidate);
  }

  /**
   * The protocol sends only the candidate line. All m-lines are BUNDLEd on one
   * transport, so the first m-line is the right one for any candidate.
   */
  async function addRemoteCandidate(pc, candidate) {
    const init = candidate ? { candidate, sdpMLineIndex: 0 } : { candidate: '', sdpMLineIndex: 0 };
    try {
      await pc.addIceCandidate(init);
    } catch (err) {
      log('addIceCandidate failed', errorText(err));
    }
  }

  async function flushIncomingCandidates(s, pcName, pc) {
    const held = s.incoming[pcName].splice(0);
    for (const c of held) await addRemoteCandidate(pc, c);
  }

  // ---------------------------------------------------------------------------
  // Our own trickle candidates
  // ---------------------------------------------------------------------------

  /** onicecandidate for either PC: null means gathering ended (sent as ""). */
  function onLocalCandidate(s, pcName, candidate) {
    if (candidate && !candidate.candidate) return; // per-generation end marker; wait for null
    const line = candidate ? candidate.candidate : '';
    const out = s.outgoing[pcName];
    if (out.ready) send(s, { type: 'candidate', pc: pcName, candidate: line });
    else out.held.push(line);
  }

  /** Sends the candidates held while the offer/answer was not yet out. */
  function releaseOutgoingCandidates(s, pcName) {
    const out = s.outgoing[pcName];
    out.ready = true;
    for (const line of out.held.splice(0)) send(s, { type: 'candidate', pc: pcName, candidate: line });
  }

  // ---------------------------------------------------------------------------
  // Publish connection (we offer)
  // ---------------------------------------------------------------------------

  async function startPublishing(s) {
    const tracks = s.localStream ? sortByKind(s.localStream.getTracks()) : [];
    if (tracks.length === 0) {
      log('nothing to publish');
      return;
    }
    const pc = new RTCPeerConnection(RTC_CONFIG);
    s.publishPc = pc;
    pc.onicecandidate = (e) => onLocalCandidate(s, 'publish', e.candidate);
    pc.onconnectionstatechange = () => onPcStateChange(s, 'publish', pc);
    for (const track of tracks) {
      // One encoding per track: no simulcast for now.
      const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [s.localStream] });
      s.publishTransceivers.set(track.kind, transceiver);
    }
    await pc.setLocalDescription(await pc.createOffer());
    send(s, { type: 'publish_offer', sdp: pc.localDescription.sdp });
    releaseOutgoingCandidates(s, 'publish');
  }

  function sortByKind(tracks) {
    return [...tracks].sort((a, b) => KIND_ORDER.indexOf(a.kind) - KIND_ORDER.indexOf(b.kind));
  }

  async function onPublishAnswer(s, msg) {
    const pc = s.publishPc;
    if (!pc) throw new Error('publish_answer without a publish connection');
    await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
    s.publishAnswered = true;
    await flushIncomingCandidates(s, 'publish', pc);
    // Tracks muted before the server knew our mids: tell it now.
    for (const track of s.localStream.getTracks()) {
      if (!track.enabled) sendMute(s, track.kind);
    }
  }

  // ---------------------------------------------------------------------------
  // Subscribe connection (the server offers, we answer)
  // ---------------------------------------------------------------------------

  function createSubscribePc(s) {
    const pc = new RTCPeerConnection(RTC_CONFIG);
    s.subscribePc = pc;
    pc.onicecandidate = (e) => onLocalCandidate(s, 'subscribe', e.candidate);
    pc.onconnectionstatechange = () => onPcStateChange(s, 'subscribe', pc);
    pc.ontrack = (e) => onRemoteTrack(s, e);
    pc.ondatachannel = (e) => {
      s.dataChannel = e.channel;
      e.channel.onmessage = (m) => log('data channel message', m.data);
      log('data channel', e.channel.label);
    };
    return pc;
  }

  async function onSubscribeOffer(s, msg) {
    const pc = s.subscribePc || createSubscribePc(s);
    // The table must be in place before setRemoteDescription fires ontrack.
    s.haveTrackTable = Array.isArray(msg.tracks);
    s.subscribeTracks = new Map((msg.tracks || []).map((t) => [String(t.mid), t]));
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    await flushIncomingCandidates(s, 'subscribe', pc);
    await pc.setLocalDescription(await pc.createAnswer());
    send(s, { type: 'subscribe_answer', sdp: pc.localDescription.sdp });
    releaseOutgoingCandidates(s, 'subscribe');
    syncRemoteMedia(s);
  }

  function onRemoteTrack(s, event) {
    const mid = event.transceiver && event.transceiver.mid;
    const stream = event.streams && event.streams[0];
    if (mid != null && stream) s.midOwners.set(mid, stream.id);
    log('remote track', event.track.kind, 'mid', mid, 'stream', stream && stream.id);
    syncRemoteMedia(s);
  }

  /** Which participant a subscribe transceiver currently carries, if any. */
  function ownerOf(s, transceiver) {
    if (s.haveTrackTable) {
      const entry = s.subscribeTracks.get(transceiver.mid);
      return entry ? entry.participant_id : null;
    }
    const receiving = transceiver.currentDirection === 'recvonly' || transceiver.currentDirection === 'sendrecv';
    return receiving ? s.midOwners.get(transceiver.mid) || null : null;
  }

  /** Puts every active receiver track into its participant's tile. */
  function syncRemoteMedia(s) {
    const pc = s.subscribePc;
    if (!pc) return;
    const byOwner = new Map();
    for (const transceiver of pc.getTransceivers()) {
      if (transceiver.mid == null || transceiver.currentDirection === 'stopped') continue;
      const owner = ownerOf(s, transceiver);
      if (!owner) continue;
      if (!byOwner.has(owner)) byOwner.set(owner, []);
      byOwner.get(owner).push(transceiver.receiver.track);
    }
    for (const p of s.participants.values()) {
      setTileMedia(p.tile, byOwner.get(p.id) || []);
      renderConnectionState(s, p);
    }
  }

  // ---------------------------------------------------------------------------
  // Mute / camera
  // ---------------------------------------------------------------------------

  function localTrack(s, kind) {
    return s && s.localStream ? s.localStream.getTracks().find((t) => t.kind === kind) : undefined;
  }

  /** Flips a local track on/off and tells the server. */
  function toggleLocal(kind) {
    const s = session;
    const track = localTrack(s, kind);
    if (!track) return;
    track.enabled = !track.enabled;
    renderLocalControls(s);
    sendMute(s, kind);
  }

  /** Sends `mute` for one kind; before publish_answer it is sent on arrival instead. */
  function sendMute(s, kind) {
    const transceiver = s.publishTransceivers.get(kind);
    const track = localTrack(s, kind);
    if (!transceiver || !track || transceiver.mid == null || !s.publishAnswered) return;
    send(s, { type: 'mute', mid: transceiver.mid, muted: !track.enabled });
  }

  // ---------------------------------------------------------------------------
  // Participants and tiles
  // ---------------------------------------------------------------------------

  function addParticipant(s, info) {
    if (!info || !info.id || info.id === s.participantId) return;
    let p = s.participants.get(info.id);
    if (!p) {
      p = { id: info.id, name: info.name || info.id, tracks: new Map(), tile: createTile() };
      p.tile.dataset.testid = 'remote-tile';
      p.tile.dataset.participantId = p.id;
      p.tile.dataset.participantName = p.name;
      p.tile.querySelector('.name').textContent = p.name;
      p.tile.querySelector('.avatar').textContent = initial(p.name);
      s.participants.set(p.id, p);
      ui.grid.append(p.tile);
      log('participant', p.name, p.id);
    }
    for (const t of info.tracks || []) p.tracks.set(t.id, t);
    renderIndicators(p);
    syncRemoteMedia(s);
    renderConnectionState(s, p);
    updateGridSize();
  }

  function removeParticipant(s, id) {
    const p = s.participants.get(id);
    if (!p) return;
    s.participants.delete(id);
    detachMedia(p.tile);
    p.tile.remove();
    updateGridSize();
    log('participant left', p.name, id);
  }

  /** track_published / track_updated: record the track and its mute state. */
  function setTrack(s, participantId, track) {
    const p = s.participants.get(participantId);
    if (!p || !track || !track.id) return;
    p.tracks.set(track.id, track);
    renderIndicators(p);
  }

  function createTile() {
    return ui.tileTemplate.content.firstElementChild.cloneNode(true);
  }

  function initial(name) {
    return ([...name.trim()][0] || '?').toUpperCase();
  }

  function addLocalTile(s) {
    const tile = createTile();
    tile.classList.add('local');
    tile.dataset.testid = 'local-tile';
    tile.dataset.participantName = s.name;
    tile.querySelector('.name').textContent = `${s.name} (you)`;
    tile.querySelector('.avatar').textContent = initial(s.name);
    if (s.localStream) {
      const video = tile.querySelector('video');
      video.srcObject = s.localStream; // the <video> is muted: no echo of ourselves
      playMedia(video);
    }
    s.localTile = tile;
    ui.grid.prepend(tile);
    renderLocalControls(s);
    updateGridSize();
  }

  /** Gives a tile these receiver tracks, touching the elements only on change. */
  function setTileMedia(tile, tracks) {
    const video = tile.querySelector('video');
    const audio = tile.querySelector('audio');
    setElementTracks(video, tracks.filter((t) => t.kind === 'video'));
    setElementTracks(audio, tracks.filter((t) => t.kind === 'audio'));
    tile.dataset.hasVideo = String(tracks.some((t) => t.kind === 'video'));
  }

  function setElementTracks(element, tracks) {
    const current = element.srcObject ? element.srcObject.getTracks() : [];
    const same = current.length === tracks.length && tracks.every((t) => current.includes(t));
    if (same) return;
    element.srcObject = tracks.length ? new MediaStream(tracks) : null;
    if (tracks.length) playMedia(element);
  }

  function detachMedia(tile) {
    for (const el of tile.querySelectorAll('video, audio')) el.srcObject = null;
  }

  /** play(), and if autoplay with sound is blocked, offer a button that unblocks it. */
  function playMedia(element) {
    const attempt = element.play();
    if (!attempt) return;
    attempt.catch((err) => {
      if (err.name === 'NotAllowedError') {
        ui.audioUnlock.hidden = false;
      } else if (err.name !== 'AbortError') {
        log('play() failed', errorText(err));
      }
    });
  }

  function unlockAudio() {
    ui.audioUnlock.hidden = true;
    for (const el of ui.grid.querySelectorAll('video, audio')) {
      if (el.srcObject) playMedia(el);
    }
  }

  /** Mute indicators: a kind counts as muted when it has tracks and all are muted. */
  function renderIndicators(p) {
    for (const kind of ['audio', 'video']) {
      const tracks = [...p.tracks.values()].filter((t) => t.kind === kind);
      const muted = tracks.length > 0 && tracks.every((t) => t.muted);
      p.tile.dataset[`${kind}Muted`] = String(muted);
      p.tile.dataset[`${kind}State`] = tracks.length === 0 ? 'none' : muted ? 'muted' : 'on';
    }
  }

  /** A remote tile shows the subscribe connection's state once it has media. */
  function renderConnectionState(s, p) {
    const pc = s.subscribePc;
    const hasMedia = p.tile.querySelector('video').srcObject || p.tile.querySelector('audio').srcObject;
    const state = !pc || !hasMedia ? 'waiting' : pc.connectionState;
    p.tile.dataset.connectionState = state;
    p.tile.querySelector('.conn').textContent = state === 'connected' ? '' : state === 'waiting' ? 'waiting for media' : state;
  }

  function renderLocalControls(s) {
    const mic = localTrack(s, 'audio');
    const cam = localTrack(s, 'video');
    const micOff = !!mic && !mic.enabled;
    const camOff = !!cam && !cam.enabled;
    ui.micButton.disabled = !mic;
    ui.cameraButton.disabled = !cam;
    ui.micButton.setAttribute('aria-pressed', String(micOff));
    ui.cameraButton.setAttribute('aria-pressed', String(camOff));
    ui.micButton.textContent = micOff ? 'Unmute mic' : 'Mute mic';
    ui.cameraButton.textContent = camOff ? 'Camera on' : 'Camera off';
    if (s.localTile) {
      s.localTile.dataset.audioMuted = String(micOff);
      s.localTile.dataset.videoMuted = String(camOff);
      s.localTile.dataset.audioState = mic ? (micOff ? 'muted' : 'on') : 'none';
      s.localTile.dataset.videoState = cam ? (camOff ? 'muted' : 'on') : 'none';
    }
  }

  /** Lets the CSS pick column counts from the number of tiles. */
  function updateGridSize() {
    ui.grid.dataset.count = String(ui.grid.children.length);
  }

  // ---------------------------------------------------------------------------
  // Connection state display
  // ---------------------------------------------------------------------------

  function onPcStateChange(s, pcName, pc) {
    log(`${pcName} connection`, pc.connectionState);
    if (!isCurrent(s)) return;
    if (pcName === 'publish' && s.localTile) {
      s.localTile.dataset.connectionState = pc.connectionState;
      s.localTile.querySelector('.conn').textContent = pc.connectionState === 'connected' ? '' : pc.connectionState;
    }
    if (pcName === 'subscribe') {
      for (const p of s.participants.values()) renderConnectionState(s, p);
    }
    if (pc.connectionState === 'failed') showError(`The ${pcName} connection failed.`);
    updateStatus();
  }

  function updateStatus() {
    const s = session;
    if (!s) {
      ui.status.textContent = '';
      return;
    }
    const socketStates = ['connecting', 'open', 'closing', 'closed'];
    const parts = {
      signaling: s.ws ? socketStates[s.ws.readyState] : 'connecting',
      publish: s.publishPc ? s.publishPc.connectionState : 'none',
      subscribe: s.subscribePc ? s.subscribePc.connectionState : 'none',
    };
    ui.status.textContent = Object.entries(parts).map(([k, v]) => `${k}: ${v}`).join(' · ');
    Object.assign(ui.status.dataset, parts);
  }

  // ---------------------------------------------------------------------------
  // Screens and URL
  // ---------------------------------------------------------------------------

  function showCallScreen(s) {
    ui.joinScreen.hidden = true;
    ui.callScreen.hidden = false;
    ui.roomLabel.textContent = `Room: ${s.room}`;
    ui.grid.replaceChildren();
    updateStatus();
  }

  function showJoinScreen() {
    ui.grid.replaceChildren();
    ui.callScreen.hidden = true;
    ui.audioUnlock.hidden = true;
    ui.joinScreen.hidden = false;
    ui.joinButton.disabled = false;
    ui.roomLabel.textContent = '';
    updateStatus();
  }

  function rememberRoomInUrl(room) {
    const url = new URL(location.href);
    url.searchParams.set('room', room);
    url.searchParams.delete('name'); // a reload should not re-join by itself
    history.replaceState(null, '', url);
  }

  function onJoinSubmit(event) {
    event.preventDefault();
    join(ui.roomInput.value.trim(), ui.nameInput.value.trim());
  }

  function init() {
    const params = new URLSearchParams(location.search);
    const room = params.get('room') || '';
    const name = params.get('name') || '';
    ui.roomInput.value = room;
    ui.nameInput.value = name;
    ui.joinForm.addEventListener('submit', onJoinSubmit);
    ui.micButton.addEventListener('click', () => toggleLocal('audio'));
    ui.cameraButton.addEventListener('click', () => toggleLocal('video'));
    ui.leaveButton.addEventListener('click', leave);
    ui.audioUnlockButton.addEventListener('click', unlockAudio);
    window.addEventListener('pagehide', () => session && leave());
    if (room && name) join(room.trim(), name.trim());
    else (room ? ui.nameInput : ui.roomInput).focus();
  }

  /** Hooks for tests and debugging in the console. */
  window.cascade = {
    get participantId() { return session ? session.participantId : null; },
    get publishPc() { return session ? session.publishPc : null; },
    get subscribePc() { return session ? session.subscribePc : null; },
    get room() { return session ? session.room : null; },
    /** mid -> {participant_id, track_id, kind} for the subscribe connection. */
    get tracksByMid() { return session ? Object.fromEntries(session.subscribeTracks) : {}; },
    join,
    leave,
  };

  init();
})();
