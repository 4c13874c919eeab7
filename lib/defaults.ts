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
  const merged: Record<string, unknown> = { ...defaults };
  for (const [key, value] of Object.entries(options)) if (value !== undefined) merged[key] = value;
  return merged as WithDefaults<O, D>;
}
