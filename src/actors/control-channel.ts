/**
 * Control-plane calls from main into an actor that sleeps in poll(): Comlink RPC over the
 * worker's message port, with an eventfd doorbell to wake the actor.
 *
 * A device actor (virtio/block-worker.ts; net, vsock and balloon later) blocks its thread in
 * poll() on eventfds and never returns to its event loop while idle, so a MessagePort
 * 'message' listener there would never fire. Firecracker has the same problem between its API
 * thread and the VMM thread and solves it the same way: the request goes on a channel and an
 * eventfd wakes the VMM thread's epoll loop (src/firecracker/src/api_server_adapter.rs,
 * `to_vmm` + `to_vmm_event_fd`). Here:
 *
 *   main:   connectControl<T>(worker, doorbell).remote.method(args)
 *           → Comlink posts the request on the worker's port, the endpoint rings `doorbell`;
 *   actor:  const server = serveControl(impl, parentPort); … poll([doorbell, …]) …
 *           → on the doorbell: drain it, then `await server.dispatch()`, which takes every
 *             queued request with receiveMessageOnPort, runs it on `impl` (Comlink.expose) and
 *             resolves once every reply has been posted.
 *
 * Replies must be posted before the actor goes back into poll(): Comlink posts a reply from a
 * promise callback, and a thread blocked in poll() runs no promise callbacks. dispatch() waits
 * for them, so an actor can also end its loop right after a `stop` call's reply is out.
 *
 * Errors thrown by a method reach the caller as a KindlingError with the same code and name
 * (errors.ts toWire/fromWire; Comlink's own handler keeps only message and name). A call to an
 * actor whose worker has exited — or that exits before replying — rejects with ACTOR_EXITED
 * instead of waiting forever. Only plain calls with structured-cloneable arguments and results
 * are meant here (file descriptors travel as numbers): Comlink.proxy() values would need a
 * MessagePort the sleeping actor never services.
 */
import * as Comlink from 'comlink';
import { receiveMessageOnPort, type MessagePort, type TransferListItem, type Worker } from 'node:worker_threads';
import type { EventFd } from '../kvm/eventfd.js';
import { KindlingError, fromWire, toWire, type WireError } from '../errors.js';

// Comlink's 'throw' handler carries an Error as { message, name, stack } and rebuilds a plain
// Error, which loses the code. Keep its marker test (the marker symbol is private to Comlink)
// and carry the error as a WireError instead. Both sides import this module, so both install it.
const comlinkThrow = Comlink.transferHandlers.get('throw')!;
Comlink.transferHandlers.set('throw', {
  canHandle: comlinkThrow.canHandle,
  serialize: (thrown) => [toWire((thrown as { value: unknown }).value), []],
  deserialize: (wire) => { throw fromWire(wire as WireError); },
});

type Listener = EventListenerOrEventListenerObject;
const deliver = (l: Listener, data: unknown): void => {
  const ev = { data } as MessageEvent;
  if (typeof l === 'function') l(ev);
  else l.handleEvent(ev);
};
/** The call id Comlink puts on every request and its reply (comlink protocol.ts, `id`). */
const idOf = (data: unknown): string | undefined => (data as { id?: unknown } | null)?.id as string | undefined;

/** Main's side of one actor's control channel. */
export interface ControlClient<T> {
  /** The actor's control object; every method returns a promise of its result. */
  readonly remote: Comlink.Remote<T>;
  /**
   * Stops using the doorbell (call before closing it: a later call, or the request Comlink
   * sends when the proxy is garbage-collected, would otherwise write to a reused fd number).
   * Calls made after this reject with ACTOR_EXITED.
   */
  close(): void;
}

/** Connects to the control object an actor serves with serveControl(). */
export function connectControl<T>(worker: Worker, doorbell: EventFd, actor: string): ControlClient<T> {
  const listeners = new Map<Listener, (data: unknown) => void>();
  const pending = new Set<string>();
  let gone = false;
  /**
   * Answers calls that can no longer be answered with the reply the actor sends for a throw
   * (a HandlerWireValue named 'throw', comlink's protocol.ts), so Comlink rejects them.
   */
  const failPending = (): void => {
    const error = toWire(new KindlingError('ACTOR_EXITED', `${actor}: the actor's worker has exited or its channel was closed`));
    for (const id of pending) {
      for (const l of listeners.keys()) deliver(l, { id, type: 'HANDLER', name: 'throw', value: error });
    }
    pending.clear();
  };
  worker.once('exit', () => { gone = true; failPending(); });
  const endpoint: Comlink.Endpoint = {
    postMessage(message: unknown, transfer?: Transferable[]) {
      const id = idOf(message);
      if (id !== undefined) pending.add(id);
      if (gone) {
        queueMicrotask(failPending);
        return;
      }
      worker.postMessage(message, transfer as unknown as TransferListItem[] | undefined);
      doorbell.signal();
    },
    addEventListener(_type: string, l: Listener) {
      const on = (data: unknown): void => {
        const id = idOf(data);
        if (id === undefined || !pending.delete(id)) return; // not a reply (ready, log lines)
        deliver(l, data);
      };
      listeners.set(l, on);
      worker.on('message', on);
    },
    removeEventListener(_type: string, l: Listener) {
      const on = listeners.get(l);
      if (on) worker.off('message', on);
      listeners.delete(l);
    },
  };
  return {
    remote: Comlink.wrap<T>(endpoint),
    close() {
      gone = true;
      failPending();
    },
  };
}

/** The actor's side: serves `impl` to connectControl() callers on `port` (its parentPort). */
export interface ControlServer {
  /**
   * Runs every request queued on the port (call after the doorbell fired and was drained) and
   * resolves once each has been answered.
   */
  dispatch(): Promise<void>;
}

export function serveControl(impl: object, port: MessagePort): ControlServer {
  const listeners = new Set<Listener>();
  const unanswered = new Set<string>();
  let allAnswered: (() => void) | undefined;
  Comlink.expose(impl, {
    postMessage(message: unknown, transfer?: Transferable[]) {
      port.postMessage(message, transfer as unknown as TransferListItem[] | undefined);
      const id = idOf(message);
      if (id !== undefined) unanswered.delete(id);
      if (unanswered.size === 0) allAnswered?.();
    },
    addEventListener(_type: string, l: Listener) { listeners.add(l); },
    removeEventListener(_type: string, l: Listener) { listeners.delete(l); },
  });
  return {
    async dispatch() {
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
        const id = idOf(m.message);
        // Comlink.expose answers every request while it listens (it stops after RELEASE).
        if (id !== undefined && listeners.size > 0) unanswered.add(id);
        for (const l of [...listeners]) deliver(l, m.message);
      }
      if (unanswered.size === 0) return;
      await new Promise<void>((resolve) => { allAnswered = resolve; });
      allAnswered = undefined;
    },
  };
}
