import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { BearerSyntaxError, MAX_TOKEN_LENGTH, checkScopes, parseBearer } from "../src/bearer.js";
import { createTokenClient, isLoopbackHost } from "../src/client.js";

describe("parseBearer", () => {
  const token = "tkn_abcDEF0123456789";
  const accepted: Array<[string, string, string]> = [
    ["canonical scheme", `Bearer ${token}`, token],
    ["lower-case scheme", `bearer ${token}`, token],
    ["upper-case scheme", `BEARER ${token}`, token],
    ["several spaces", `Bearer    ${token}`, token],
    ["surrounding whitespace", ` \tBearer ${token} \t`, token],
    ["b64token padding", "Bearer abc+/=", "abc+/="],
    ["maximum length", `Bearer ${"a".repeat(MAX_TOKEN_LENGTH)}`, "a".repeat(MAX_TOKEN_LENGTH)],
  ];
  for (const [name, value, want] of accepted) {
    it(`accepts ${name}`, () => {
      assert.equal(parseBearer(value), want);
    });
  }

  const rejected: Array<[string, string, RegExp]> = [
    ["scheme only", "Bearer", /has no token/],
    ["scheme and spaces", "Bearer   ", /has no token/],
    ["empty value", "", /not Bearer/],
    ["bare token", token, /not Bearer/],
    ["basic scheme", "Basic dXNlcjpwYXNz", /not Bearer/],
    ["tab after scheme", `Bearer\t${token}`, /not Bearer/],
    ["space inside token", "Bearer tkn_abc def", /b64token/],
    ["quote inside token", 'Bearer tkn_"abc"', /b64token/],
    ["non-ASCII token", "Bearer tkn_d\u00e9j\u00e0", /b64token/],
    ["padding in the middle", "Bearer ab=c", /b64token/],
    ["too long", `Bearer ${"a".repeat(MAX_TOKEN_LENGTH + 1)}`, /longer than 255/],
  ];
  for (const [name, value, message] of rejected) {
    it(`rejects ${name}`, () => {
      assert.throws(() => parseBearer(value), (error: unknown) => error instanceof BearerSyntaxError && message.test(error.message));
    });
  }
});

describe("checkScopes", () => {
  it("accepts tokend scopes", () => {
    assert.doesNotThrow(() => checkScopes(["repo:read", "a", "x.y_z-1"]));
  });
  for (const scope of ["", "Repo:read", "repo read", 'repo"', "1repo", "a".repeat(65)]) {
    it(`rejects ${JSON.stringify(scope)}`, () => {
      assert.throws(() => checkScopes([scope]), TypeError);
    });
  }
});

describe("isLoopbackHost", () => {
  const cases: Array<[string, boolean]> = [
    ["127.0.0.1", true],
    ["127.3.4.5", true],
    ["localhost", true],
    ["LOCALHOST", true],
    ["[::1]", true],
    ["::1", true],
    ["tokend.internal", false],
    ["10.0.0.1", false],
    ["0.0.0.0", false],
    ["[2001:db8::1]", false],
    ["127.example.com", false],
    ["localhost.example.com", false],
  ];
  for (const [host, want] of cases) {
    it(`${host} is ${want ? "" : "not "}loopback`, () => {
      assert.equal(isLoopbackHost(host), want);
    });
  }
});

describe("createTokenClient", () => {
  const rejected: Array<[string, { baseUrl: string; token: string; timeoutMs?: number }, RegExp]> = [
    ["missing token", { baseUrl: "http://127.0.0.1:1", token: "" }, /missing token/],
    ["Bearer prefix", { baseUrl: "http://127.0.0.1:1", token: "Bearer tkn_x" }, /without the "Bearer " prefix/],
    ["space in token", { baseUrl: "http://127.0.0.1:1", token: "tkn x" }, /whitespace/],
    ["plaintext remote URL", { baseUrl: "http://tokend.internal:8443", token: "tkn_x" }, /allowed only for localhost/],
    ["other scheme", { baseUrl: "ftp://127.0.0.1:1", token: "tkn_x" }, /must be https: or http:/],
    ["not a URL", { baseUrl: "127.0.0.1:1234", token: "tkn_x" }, /invalid baseUrl|must be https: or http:/],
    ["zero timeout", { baseUrl: "http://127.0.0.1:1", token: "tkn_x", timeoutMs: 0 }, /invalid timeoutMs/],
  ];
  for (const [name, options, message] of rejected) {
    it(`rejects ${name}`, () => {
      assert.throws(() => createTokenClient(options), message);
    });
  }

  it("accepts TLS to any host", () => {
    const client = createTokenClient({ baseUrl: "https://tokend.internal:8443", token: "tkn_x" });
    client.close();
  });
});
