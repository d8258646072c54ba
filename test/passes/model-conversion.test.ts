import { describe, expect, it } from 'vitest';
import { applyOverride, convertModel } from '../../src/passes/model-conversion.js';

describe('converting a model written for another tool', () => {
  it('writes hex colours as rgb() triples at any depth, and leaves other values as they are', () => {
    const model = {
      backgroundColor: '#1595d7',
      foregroundColor: '#FFF',
      labelColor: 'rgb(1, 2, 3)',
      stripColor: 'red',
      description: '#ffffff is not a colour key',
      semantics: { seats: [{ seatSectionColor: '#ffd700', seatNumber: '5' }] },
    };
    const before = structuredClone(model);
    const { passJson, conversions } = convertModel(model);
    expect(passJson).toEqual({
      ...model,
      backgroundColor: 'rgb(21, 149, 215)',
      foregroundColor: 'rgb(255, 255, 255)',
      semantics: { seats: [{ seatSectionColor: 'rgb(255, 215, 0)', seatNumber: '5' }] },
    });
    expect(conversions).toEqual([
      'backgroundColor: #1595d7 → rgb(21, 149, 215)',
      'foregroundColor: #FFF → rgb(255, 255, 255)',
      'semantics.seats[0].seatSectionColor: #ffd700 → rgb(255, 215, 0)',
    ]);
    expect(model).toEqual(before);
  });

  it('moves the deprecated barcode into barcodes, or drops it when barcodes is there', () => {
    const barcode = { format: 'PKBarcodeFormatQR', message: 'M', messageEncoding: 'iso-8859-1' };
    expect(convertModel({ barcode })).toEqual({
      passJson: { barcodes: [barcode] },
      conversions: ['barcode → barcodes[0] (barcode is deprecated since iOS 9)'],
    });
    const barcodes = [{ ...barcode, format: 'PKBarcodeFormatPDF417' }];
    expect(convertModel({ barcode, barcodes }).passJson).toEqual({ barcodes });
    expect(convertModel({ barcodes }).conversions).toEqual([]);
  });
});

describe("a template's override", () => {
  it('merges dictionaries key by key and replaces every other value, listing what it set', () => {
    const model = {
      boardingPass: { headerFields: [{ key: 'gate' }] },
      barcodes: [{ message: 'a' }],
      logoText: 'A',
    };
    const { passJson, conversions } = applyOverride(model, {
      boardingPass: { transitType: 'PKTransitTypeAir' },
      barcodes: [],
      logoText: 'B',
    });
    expect(passJson).toEqual({
      boardingPass: { headerFields: [{ key: 'gate' }], transitType: 'PKTransitTypeAir' },
      barcodes: [],
      logoText: 'B',
    });
    expect(conversions).toEqual([
      'boardingPass.transitType: set by the override',
      'barcodes: set by the override',
      'logoText: set by the override',
    ]);
    expect(model.boardingPass).toEqual({ headerFields: [{ key: 'gate' }] });
  });

  it('removes a key whose override is null, as a JSON merge patch does (RFC 7386), at any depth', () => {
    const model = {
      passLastModDate: '2024-01-01',
      semantics: { eventName: 'A', updatedEventStartDate: 'x' },
    };
    const { passJson, conversions } = applyOverride(model, {
      passLastModDate: null,
      semantics: { updatedEventStartDate: null },
      absent: null,
    });
    expect(passJson).toEqual({ semantics: { eventName: 'A' } });
    expect(conversions).toEqual([
      'passLastModDate: removed by the override',
      'semantics.updatedEventStartDate: removed by the override',
    ]);
  });

  it('keeps a "__proto__" key of JSON a key, in the override and in the model', () => {
    const override = JSON.parse('{"__proto__": {"polluted": true}, "logoText": "B"}') as Record<
      string,
      unknown
    >;
    const model = JSON.parse('{"__proto__": {"x": 1}, "backgroundColor": "#fff"}') as Record<string, unknown>;
    const { passJson } = convertModel(applyOverride(model, override).passJson);
    expect(Object.getPrototypeOf(passJson)).toBe(Object.prototype);
    expect(Object.keys(passJson).sort()).toEqual(['__proto__', 'backgroundColor', 'logoText']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
