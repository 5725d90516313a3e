/**
 * The call: one session object per join, holding everything the call uses,
 * and which session is the current one (none on the join screen).
 */

/** The current session, or null on the join screen. Replaced on every join. */
let current = null;

/**
 * Starts a new session for `room` and makes it the current one. `token` is
 * the access token from the join link (`?token=`), if the server needs one.
 */
export function startSession(room, name, token = null) {
  current = {
    room,
    name,
    token,
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
    /** A publish renegotiation waits for the pending answer. */
    publishRenegotiate: false,
    /** The next publish offer restarts ICE. */
    publishIceRestart: false,
    /** Per connection ("publish", "subscribe"): {timer, since} of an ICE restart under way. */
    iceRestart: {},
    /** ICE restarts that brought a connection back, per connection (a test hook). */
    iceRestarts: { publish: 0, subscribe: 0 },
    /** The screen share: {stream (null when stopped), video, audio: RTCRtpTransceiver}, once shared. */
    screen: null,
    /** Our own share's preview tile, while sharing. */
    localScreenTile: null,
    subscribePc: null,
    /** The subscribe connection's `cascade` channel (it only brings the connection up). */
    dataChannel: null,
    /** {reliable, lossy}: the publish connection's relayed data channels (data.js). */
    channels: null,
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
    /** participant id -> {id, name, tracks: Map(track id -> Track), paused: Map(track id -> reason), tile, screenTile} */
    participants: new Map(),
    /** Adaptive stream's observers and the preferences sent (adaptive.js); null until a remote video shows. */
    adaptive: null,
  };
  return current;
}

export function currentSession() {
  return current;
}

export function isCurrent(s) {
  return current === s && !s.closed;
}

/** Closes `s` for good; false if it was closed already. */
export function endSession(s) {
  if (s.closed) return false;
  s.closed = true;
  if (current === s) current = null;
  return true;
}
