// Listeners by name with on/off/once, as an EventEmitter keeps them, in a form that runs in a
// browser too (no Node `events`): the client library's lifecycle events and its delivery handlers.

// biome-ignore lint/suspicious/noExplicitAny: listener signatures differ by name
type AnyFn = (...args: any[]) => unknown;

interface Entry<F extends AnyFn> {
  fn: F;
  once: boolean;
}

export class Listeners<F extends AnyFn = AnyFn> {
  private readonly byName = new Map<string, Entry<F>[]>();

  /** Adds `fn` to `name`; a function already there is not added twice (as addEventListener). */
  add(name: string, fn: F, once = false): void {
    const list = this.byName.get(name) ?? [];
    if (list.some((entry) => entry.fn === fn)) return;
    list.push({ fn, once });
    this.byName.set(name, list);
  }

  /** Removes `fn` (every registration of it) from `name`; without `fn`, every listener of `name`; without both, all. */
  remove(name?: string, fn?: F): void {
    if (name === undefined) {
      this.byName.clear();
      return;
    }
    if (fn === undefined) {
      this.byName.delete(name);
      return;
    }
    const list = this.byName.get(name)?.filter((entry) => entry.fn !== fn) ?? [];
    if (list.length > 0) this.byName.set(name, list);
    else this.byName.delete(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The listeners to call for one event, in the order added; `once` listeners are removed by taking them. */
  take(name: string): F[] {
    const list = this.byName.get(name);
    if (!list) return [];
    const kept = list.filter((entry) => !entry.once);
    if (kept.length !== list.length) {
      if (kept.length > 0) this.byName.set(name, kept);
      else this.byName.delete(name);
    }
    return list.map((entry) => entry.fn);
  }

  count(name: string): number {
    return this.byName.get(name)?.length ?? 0;
  }
}
