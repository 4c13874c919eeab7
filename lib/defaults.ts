/**
 * Option defaults merged once, at the top of a constructor, so no code after it needs a fallback.
 */

/** `options` with every key of `defaults` present and never `undefined`. */
export type WithDefaults<O, D> = O & { readonly [K in keyof D & keyof O]-?: Exclude<O[K], undefined> };

/**
 * `{ ...defaults, ...options }`, except that a key set to `undefined` in `options` takes its
 * default (as `??` would): callers often forward options they were given, set or not.
 */
export function withDefaults<O extends object, D extends Partial<O>>(defaults: D, options: O): WithDefaults<O, D> {
  return assignDefined({ ...defaults }, options) as WithDefaults<O, D>;
}

/**
 * The same merge onto a new object whose prototype holds the defaults: each object holds only the
 * options given, where `withDefaults` copies every default into each one.
 */
export function overDefaults<O extends object, D extends Partial<O>>(prototype: D, options: O): WithDefaults<O, D> {
  return assignDefined(Object.create(prototype) as Record<string, unknown>, options) as WithDefaults<O, D>;
}

/** Sets every key of `options` on `target`, except those set to `undefined`. */
function assignDefined(target: Record<string, unknown>, options: object): Record<string, unknown> {
  for (const [key, value] of Object.entries(options)) if (value !== undefined) target[key] = value;
  return target;
}
