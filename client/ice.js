/**
 * ICE for both peer connections ("publish" and "subscribe"): their
 * configuration and trickle candidates over signaling. Our candidates are
 * held until that connection's offer or answer has been sent, the server's
 * until its remote description is set.
 */
import { log, errorText } from './log.js';
import { send } from './signaling.js';

/**
 * The ICE servers are the ones `joined` gave (STUN, and TURN with this
 * participant's short-lived credentials); none on loopback and LAN, where
 * Cascade's host candidates suffice. A join link with `?relay=1` sends all
 * media through TURN (`iceTransportPolicy: 'relay'`), which hides the
 * browser's addresses from the server and tests a TURN deployment.
 */
function rtcConfig(s) {
  const relay = new URLSearchParams(location.search).get('relay') === '1';
  return { iceServers: s.iceServers || [], iceTransportPolicy: relay ? 'relay' : 'all' };
}

/** A peer connection that trickles its candidates as `pcName` and reports its state changes. */
export function newPeerConnection(s, pcName, onStateChange) {
  const pc = new RTCPeerConnection(rtcConfig(s));
  pc.onicecandidate = (e) => onLocalCandidate(s, pcName, e.candidate);
  pc.onconnectionstatechange = () => onStateChange(s, pcName, pc);
  return pc;
}

/** onicecandidate for either PC: null means gathering ended (sent as ""). */
function onLocalCandidate(s, pcName, candidate) {
  if (candidate && !candidate.candidate) return; // per-generation end marker; wait for null
  const line = candidate ? candidate.candidate : '';
  const out = s.outgoing[pcName];
  if (out.ready) send(s, { type: 'candidate', pc: pcName, candidate: line });
  else out.held.push(line);
}

/** Sends the candidates held while the offer/answer was not yet out. */
export function releaseOutgoingCandidates(s, pcName) {
  const out = s.outgoing[pcName];
  out.ready = true;
  for (const line of out.held.splice(0)) send(s, { type: 'candidate', pc: pcName, candidate: line });
}

/** Applies a server trickle candidate now, or holds it until the PC can take it. */
export async function onRemoteCandidate(s, msg) {
  const pcName = msg.pc === 'subscribe' ? 'subscribe' : 'publish';
  const pc = pcName === 'subscribe' ? s.subscribePc : s.publishPc;
  if (!pc || !pc.remoteDescription) {
    s.incoming[pcName].push(msg.candidate);
    return;
  }
  await addRemoteCandidate(pc, msg.candidate);
}

/** Applies the server candidates held for `pcName` once its remote description is set. */
export async function flushIncomingCandidates(s, pcName, pc) {
  const held = s.incoming[pcName].splice(0);
  for (const c of held) await addRemoteCandidate(pc, c);
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
