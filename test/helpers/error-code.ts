/** The stable code of the typed error a call throws: what tests of refusals compare. */
import assert from 'node:assert/strict';
import { SmartProxyError } from '../../ts/protocols/errors.js';

/** `fn`'s error code, or 'no error' when it returns; anything but a `type` error fails the test. */
export function codeOf(fn: () => unknown, type: abstract new (...args: never[]) => SmartProxyError = SmartProxyError): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof type, `threw ${String(err)} instead of a ${type.name}`);
    return err.code;
  }
  return 'no error';
}
