/**
 * serde_json/serde-derive fidelity of the body deserializer (firecracker src/firecracker/src/api_server/parsed_request.rs): one malformation per
 * assertion, exact text and position.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseMachineConfigPut } from '../../src/config/machine-config.js';
import { parseDrive } from '../../src/config/drives.js';
import { parseLoadSnapshot } from '../../src/config/snapshot.js';
import { formatF64, parseJsonValue, serdeJsonStringify } from '../../src/config/serde-read.js';
import { deserialize, enumOf, field, int, opt, str, struct } from '../../src/config/serde.js';

const err = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};
const mc = (s: string): string => err(() => parseMachineConfigPut(s));

test('syntax errors: EOF, trailing comma, trailing characters, bad literal, bad number', () => {
  assert.is(mc(''), 'EOF while parsing a value at line 1 column 0');
  assert.is(mc('{'), 'EOF while parsing an object at line 1 column 1');
  assert.is(mc('{"vcpu_count": 1,}'), 'trailing comma at line 1 column 18');
  assert.is(mc('{"vcpu_count": 1, "mem_size_mib": 2} x'), 'trailing characters at line 1 column 38');
  assert.is(mc('{"vcpu_count": tru}'), 'expected ident at line 1 column 19');
  assert.is(mc('{"vcpu_count": 01}'), 'invalid number at line 1 column 17');
  assert.is(mc('{"vcpu_count" 1}'), 'expected `:` at line 1 column 15');
  assert.is(mc('{"vcpu_count": 1 "x": 2}'), 'expected `,` or `}` at line 1 column 18');
  assert.is(mc('{1: 2}'), 'key must be a string at line 1 column 2');
  assert.is(mc('{"vcpu_count": 1,\n "mem_size_mib": "x"}'), 'invalid type: string "x", expected usize at line 2 column 20');
});

test('type errors name the Rust type', () => {
  assert.is(mc('{"vcpu_count": "2"}'), 'invalid type: string "2", expected u8 at line 1 column 18');
  assert.is(mc('{"vcpu_count": 256}'), 'invalid value: integer `256`, expected u8 at line 1 column 18');
  assert.is(mc('{"vcpu_count": -1}'), 'invalid value: integer `-1`, expected u8 at line 1 column 17');
  assert.is(mc('{"vcpu_count": 1.0}'), 'invalid type: floating point `1.0`, expected u8 at line 1 column 18');
  assert.is(mc('{"vcpu_count": null}'), 'invalid type: null, expected u8 at line 1 column 19');
  assert.is(mc('{"vcpu_count": {}}'), 'invalid type: map, expected u8 at line 1 column 15');
  assert.is(mc('{"vcpu_count": 1, "smt": "yes"}'), 'invalid type: string "yes", expected a boolean at line 1 column 30');
  assert.is(mc('"x"'), 'invalid type: string "x", expected struct MachineConfig at line 1 column 3');
  assert.is(mc('[]'), 'invalid length 0, expected struct MachineConfig with 6 elements at line 1 column 2');
});

test('struct rules: unknown, duplicate and missing fields; defaults; sequence form', () => {
  assert.is(mc('{"vcpu_count": 1, "vcpu_count": 2}'), 'duplicate field `vcpu_count` at line 1 column 30');
  assert.is(mc('{"vcpu_count": 1}'), 'missing field `mem_size_mib` at line 1 column 17');
  assert.equal(parseMachineConfigPut('{"vcpu_count": 2, "mem_size_mib": 256}'), {
    vcpu_count: 2, mem_size_mib: 256, smt: false, cpu_template: null, track_dirty_pages: false, huge_pages: 'None',
  });
  assert.equal(parseMachineConfigPut('[2, 256]').mem_size_mib, 256);
  assert.is(err(() => parseDrive('{"drive_id": "a", "is_root_device": false, "cache_type": "Fast"}')),
    'unknown variant `Fast`, expected `Unsafe` or `Writeback` at line 1 column 63');
  const one = struct('One', [field('only', enumOf('A'))]);
  assert.is(err(() => deserialize('{"only": "B"}', one)), 'unknown variant `B`, expected `A` at line 1 column 12');
  assert.is(err(() => deserialize('{"other": 1}', struct('None', []))), 'unknown field `other`, there are no fields at line 1 column 8');
  assert.equal(deserialize('{"a": null}', struct('S', [field('a', opt(str))])), { a: null });
  assert.equal(deserialize('{"x": 1, "y": [1, {"z": null}]}', struct('Lax', [field('x', int('u8'))], false)), { x: 1 });
});

test('custom errors after deserialization carry no position', () => {
  assert.is(err(() => parseLoadSnapshot('{"snapshot_path": "s"}')), 'missing field: either `mem_backend` or `mem_file_path` is required');
});

test('serde_json values: sorted keys, float formatting, escapes', () => {
  assert.is(serdeJsonStringify(parseJsonValue('{"b": 1, "a": [1.0, 1e20, 0.5, -0, 12345678901234567890]}')), '{"a":[1.0,1e20,0.5,-0.0,12345678901234567890],"b":1}');
  assert.is(formatF64(1.5e-7), '1.5e-7');
  assert.is(formatF64(123.456), '123.456');
  assert.is(formatF64(1e16), '1e16');
  assert.is(formatF64(1e15), '1000000000000000.0');
  assert.is(serdeJsonStringify(parseJsonValue('"a\\u0001\\n/é"')), '"a\\u0001\\n/é"');
  assert.is(err(() => parseJsonValue('"\\x"')), 'invalid escape at line 1 column 3');
  assert.is(err(() => parseJsonValue('"a\u0001"')), 'control character (\\u0000-\\u001F) found while parsing a string at line 1 column 3');
  assert.is(err(() => parseJsonValue('[1,]')), 'trailing comma at line 1 column 4');
  assert.is(err(() => parseJsonValue('1e999')), 'number out of range at line 1 column 5');
});

test.run();
