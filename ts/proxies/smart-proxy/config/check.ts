/**
 * The checks every configuration part shares. Each reader looks at the type of a value before it
 * uses it, reports a wrong one once, at its JSON path, and returns a safe fallback, so that one bad
 * field never stops the check of the others (the CLI lists them all).
 */
import { ConfigError, type ConfigErrorCode } from '../../../protocols/errors.js';

/** Every problem found, in the order found. */
export class Problems {
  readonly list: ConfigError[] = [];
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const MAX_SHOWN = 60;

/** A short rendering of a configured value for a message; never throws (cycles, BigInt, null prototypes). */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  if (text === undefined) return typeof value;
  return text.length > MAX_SHOWN ? `${text.slice(0, MAX_SHOWN - 3)}...` : text;
}

/** `parent.key`, or `key` at the top level. */
export function fieldPath(parent: string, key: string): string {
  return parent ? `${parent}.${key}` : key;
}

/** What `Scope.list` accepts. */
export interface IListSpec {
  /** The items, in the plural, for messages. */
  what: string;
  /** Why an item is wrong, or null when it is fine. */
  item: (entry: unknown) => string | null;
  code?: ConfigErrorCode;
  allowEmpty?: boolean;
}

/** Problems of one part of the configuration: the options (no route) or one route. */
export class Scope {
  constructor(
    readonly problems: Problems,
    readonly route?: string,
  ) {}

  add(code: ConfigErrorCode, field: string, message: string): void {
    this.problems.list.push(new ConfigError(code, field, message, this.route));
  }

  /**
   * An optional object: the object, or undefined when absent or not an object (reported). Keys
   * outside `known` are reported: a misspelt option must fail loudly, not be ignored.
   */
  object(value: unknown, field: string, known: readonly string[], code: ConfigErrorCode = 'ERR_CONFIG_OPTION'): Record<string, unknown> | undefined {
    if (value === undefined) return undefined;
    if (!isObject(value)) {
      this.add(code, field, `must be an object, got ${describe(value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) this.add('ERR_CONFIG_UNKNOWN_OPTION', fieldPath(field, key), `unknown option (known here: ${known.join(', ')})`);
    }
    return value;
  }

  flag(value: unknown, field: string, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') {
      this.add('ERR_CONFIG_OPTION', field, `must be true or false, got ${describe(value)}`);
      return fallback;
    }
    return value;
  }

  /** A whole number of `unit` in [min, max]. */
  whole(value: unknown, field: string, fallback: number, unit: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `${min}..${max}`;
      this.add('ERR_CONFIG_OPTION', field, `must be a whole number of ${unit} ${range}, got ${describe(value)}`);
      return fallback;
    }
    return value;
  }

  /** One of `allowed`, or undefined when absent or another value (reported). */
  oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[], code: ConfigErrorCode = 'ERR_CONFIG_OPTION'): T | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.add(code, field, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${describe(value)}`);
      return undefined;
    }
    return value as T;
  }

  /** A non-empty string, or undefined when absent or not one (reported). */
  text(value: unknown, field: string, code: ConfigErrorCode = 'ERR_CONFIG_OPTION'): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value.length === 0) {
      this.add(code, field, `must be a non-empty string, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  /**
   * An array whose items `spec.item` accepts (it returns a problem message, or null); empty only
   * with `spec.allowEmpty`. Each bad item is reported at its index; the list is then undefined.
   */
  list<T>(value: unknown, field: string, spec: IListSpec): T[] | undefined {
    if (value === undefined) return undefined;
    const code = spec.code ?? 'ERR_CONFIG_OPTION';
    if (!Array.isArray(value) || (value.length === 0 && spec.allowEmpty !== true)) {
      this.add(code, field, `must be ${spec.allowEmpty === true ? 'an' : 'a non-empty'} array of ${spec.what}, got ${describe(value)}`);
      return undefined;
    }
    let valid = true;
    value.forEach((entry, i) => {
      const problem = spec.item(entry);
      if (problem !== null) {
        this.add(code, `${field}[${i}]`, problem);
        valid = false;
      }
    });
    return valid ? (value as T[]) : undefined;
  }
}
