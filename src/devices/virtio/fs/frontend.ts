/**
 * The vhost-user frontend's conversation with a backend (QEMU docs/interop/vhost-user.rst,
 * "Starting and stopping rings", "Ring states"), over an injected channel so it stays pure:
 * the real channel is a Unix socket with SCM_RIGHTS (src/kvm/fd-passing.ts `VhostUserSocket`),
 * unit tests use a scripted fake.
 *
 * Two steps, at two times:
 *  1. `handshake()` at InstanceStart: SET_OWNER, GET_FEATURES, and when the backend offers
 *     VHOST_USER_F_PROTOCOL_FEATURES, GET/SET_PROTOCOL_FEATURES (Kindling takes REPLY_ACK
 *     only). The backend's virtio features decide what the device offers the guest, so they
 *     must be known before the vCPUs run.
 *  2. `start()` at the guest's DRIVER_OK: SET_FEATURES (what the driver acked, plus the
 *     protocol-features bit), SET_MEM_TABLE with one fd per RAM region, then per vring
 *     SET_VRING_NUM, _ADDR, _BASE (0: a fresh ring), _CALL, _KICK and, when protocol features
 *     were negotiated (rings then start disabled), SET_VRING_ENABLE 1. With REPLY_ACK every
 *     SET_* asks for an ack, so a refusal is reported at the request that caused it.
 */
import { VhostUserError } from '../../../errors.js';
import {
  ReplyFramer, VHOST_USER_F_PROTOCOL_FEATURES, VHOST_USER_PROTOCOL_F_REPLY_ACK, VHOST_USER_REQUEST, bit64, checkAck, decodeU64,
  encodeRequest, memTablePayload, requestName, u64Payload, vringAddrPayload, vringFdPayload, vringStatePayload,
  type VhostUserMemRegion, type VhostUserRequest, type VhostUserVringAddr,
} from './vhost-user.js';

/** What the frontend needs of a connected socket. */
export interface VhostUserChannel {
  /** Sends one message with `fds` attached (SCM_RIGHTS); throws when the socket fails. */
  send(message: Uint8Array, fds: readonly number[]): void;
  /**
   * The next bytes from the backend, waiting at most `timeoutMs`; an empty array means the
   * backend closed the connection. Throws VHOST_USER_BACKEND on timeout or a socket error.
   */
  recv(timeoutMs: number): Uint8Array;
}

/** What the backend offered at the handshake. */
export interface VhostUserBackendFeatures {
  /** GET_FEATURES: virtio feature bits plus vhost-user's own (bit 30). */
  features: bigint;
  /** Protocol features both sides use (0 without the extension). */
  protocolFeatures: bigint;
}

/** One vring as the backend is told of it at DRIVER_OK. */
export interface VhostUserVring extends VhostUserVringAddr {
  /** Ring size the driver chose. */
  size: number;
  /** The queue's ioeventfd (KVM_IOEVENTFD on QueueNotify): the backend's kick. */
  kickFd: number;
  /** An eventfd the backend writes when it used buffers; the frontend turns it into the interrupt. */
  callFd: number;
}

/** Protocol features Kindling asks for. */
const WANTED_PROTOCOL_FEATURES = bit64(VHOST_USER_PROTOCOL_F_REPLY_ACK);

export class VhostUserFrontend {
  private readonly framer = new ReplyFramer();
  private negotiated: VhostUserBackendFeatures | undefined;

  constructor(private readonly channel: VhostUserChannel, private readonly timeoutMs: number) {}

  /**
   * A frontend continuing a conversation another thread began: main does the handshake at
   * InstanceStart, the device worker starts the rings at DRIVER_OK over the same socket.
   */
  static resume(channel: VhostUserChannel, timeoutMs: number, negotiated: VhostUserBackendFeatures): VhostUserFrontend {
    const f = new VhostUserFrontend(channel, timeoutMs);
    f.negotiated = { ...negotiated };
    return f;
  }

  /** Step 1 (module comment). Returns what the backend offers. */
  handshake(): VhostUserBackendFeatures {
    this.send(VHOST_USER_REQUEST.SET_OWNER);
    const features = decodeU64(this.call(VHOST_USER_REQUEST.GET_FEATURES), VHOST_USER_REQUEST.GET_FEATURES);
    let protocolFeatures = 0n;
    if (features & bit64(VHOST_USER_F_PROTOCOL_FEATURES)) {
      const offered = decodeU64(this.call(VHOST_USER_REQUEST.GET_PROTOCOL_FEATURES), VHOST_USER_REQUEST.GET_PROTOCOL_FEATURES);
      protocolFeatures = offered & WANTED_PROTOCOL_FEATURES;
      this.send(VHOST_USER_REQUEST.SET_PROTOCOL_FEATURES, u64Payload(protocolFeatures));
    }
    this.negotiated = { features, protocolFeatures };
    return this.negotiated;
  }

  /** Step 2 (module comment): `acked` are the virtio features the driver acked. */
  start(acked: bigint, regions: readonly VhostUserMemRegion[], regionFds: readonly number[], vrings: readonly VhostUserVring[]): void {
    const n = this.negotiated;
    if (!n) throw new VhostUserError('VHOST_USER_BACKEND', 'vhost-user start before the handshake');
    const protocol = (n.features & bit64(VHOST_USER_F_PROTOCOL_FEATURES)) !== 0n;
    this.set(VHOST_USER_REQUEST.SET_FEATURES, u64Payload(acked | (protocol ? bit64(VHOST_USER_F_PROTOCOL_FEATURES) : 0n)));
    this.set(VHOST_USER_REQUEST.SET_MEM_TABLE, memTablePayload(regions), regionFds);
    for (const r of vrings) {
      this.set(VHOST_USER_REQUEST.SET_VRING_NUM, vringStatePayload(r.index, r.size));
      this.set(VHOST_USER_REQUEST.SET_VRING_ADDR, vringAddrPayload(r));
      this.set(VHOST_USER_REQUEST.SET_VRING_BASE, vringStatePayload(r.index, 0));
      // CALL before KICK: a backend starts a ring when it gets the kick fd (vhost-user.rst
      // "Starting and stopping rings"), and the guest may kick at once (DRIVER_OK is past);
      // a completion before the call fd is known would raise no interrupt.
      this.set(VHOST_USER_REQUEST.SET_VRING_CALL, vringFdPayload(r.index), [r.callFd]);
      this.set(VHOST_USER_REQUEST.SET_VRING_KICK, vringFdPayload(r.index), [r.kickFd]);
      if (protocol) this.set(VHOST_USER_REQUEST.SET_VRING_ENABLE, vringStatePayload(r.index, 1));
    }
  }

  /** A SET_* request: acked when REPLY_ACK was negotiated. */
  private set(request: VhostUserRequest, payload: Uint8Array, fds: readonly number[] = []): void {
    const ack = ((this.negotiated?.protocolFeatures ?? 0n) & bit64(VHOST_USER_PROTOCOL_F_REPLY_ACK)) !== 0n;
    this.send(request, payload, fds, ack);
    if (ack) checkAck(this.reply(request), request);
  }

  /** A request with a reply (GET_*): its payload. */
  private call(request: VhostUserRequest): Uint8Array {
    this.send(request);
    return this.reply(request);
  }

  private send(request: VhostUserRequest, payload?: Uint8Array, fds: readonly number[] = [], needReply = false): void {
    this.channel.send(encodeRequest(request, payload, needReply), fds);
  }

  private reply(request: number): Uint8Array {
    for (;;) {
      const payload = this.framer.take(request);
      if (payload) return payload;
      const chunk = this.channel.recv(this.timeoutMs);
      if (chunk.length === 0) {
        throw new VhostUserError('VHOST_USER_BACKEND', `the vhost-user backend closed the connection before replying to ${requestName(request)}`);
      }
      this.framer.push(chunk);
    }
  }
}
