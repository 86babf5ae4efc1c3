/**
 * Named koffi struct and union types that survive being defined twice in one isolate.
 *
 * koffi keeps one registry of type names per isolate, and one process can hold two copies of
 * the modules that define them: the library bundle (dist/bundle/kindling-lib.js, what
 * `import … from 'kindling'` loads) beside tsc's dist/src, which tests also import directly
 * (the KVM tier runs its files in one process). A second definition of a name takes the first
 * type, once its layout is checked equal: same size and alignment as the fields given here.
 * Invariant: a name always denotes one layout in a process; a different one throws.
 */
import koffi, { type TypeObject } from 'koffi';

// The last overload of koffi.struct is `struct(def)`: its one parameter is the field record.
type Fields = Parameters<typeof koffi.struct>[0];

function named(name: string, define: () => TypeObject, anonymous: () => TypeObject): TypeObject {
  let existing: TypeObject;
  try {
    existing = koffi.type(name);
  } catch {
    return define(); // the first definition in this isolate
  }
  const fresh = anonymous();
  if (koffi.sizeof(existing) !== koffi.sizeof(fresh) || koffi.alignof(existing) !== koffi.alignof(fresh)) {
    throw new Error(`koffi type ${name} is already defined with another layout`);
  }
  return existing;
}

/** `koffi.struct(name, fields)`, or the same-layout type of that name defined before. */
export function namedStruct(name: string, fields: Fields): TypeObject {
  return named(name, () => koffi.struct(name, fields), () => koffi.struct(fields));
}

/** `koffi.union(name, fields)`, or the same-layout type of that name defined before. */
export function namedUnion(name: string, fields: Fields): TypeObject {
  return named(name, () => koffi.union(name, fields), () => koffi.union(fields));
}
