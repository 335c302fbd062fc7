// Judges GitHub and Shopify signature vectors with the providers' own JS
// libraries (@octokit/webhooks-methods, @shopify/shopify-api). Called by
// generate.py, which sends the cases as JSON on stdin and reads the same
// cases back, each with `expected` and `secret_index` filled in.
//
// Setup: `npm install` in this directory (versions pinned in package.json).
import { verify } from "@octokit/webhooks-methods";
import "@shopify/shopify-api/adapters/node";
import { shopifyApi, ApiVersion } from "@shopify/shopify-api";
import { readFileSync } from "node:fs";

// Read from node_modules directly: the packages do not export package.json.
const pkgVersion = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;
const versions = {
  octokit: pkgVersion("@octokit/webhooks-methods"),
  shopify: pkgVersion("@shopify/shopify-api"),
};

function header(headers, name) {
  const hit = headers.find(([n]) => n.toLowerCase() === name.toLowerCase());
  return hit ? hit[1] : undefined;
}

// Octokit's verify() throws when the signature is absent; that is "missing".
async function judgeGithub(c) {
  const body = Buffer.from(c.body_b64, "base64").toString("utf8");
  const sig = header(c.headers, "X-Hub-Signature-256");
  if (!sig) return { expected: "missing" };
  for (const [i, secret] of c.secrets.entries()) {
    if (await verify(secret, body, sig)) return { expected: "valid", secret_index: i };
  }
  return { expected: "invalid" };
}

async function judgeShopify(c) {
  for (const [i, secret] of c.secrets.entries()) {
    const shopify = shopifyApi({
      apiKey: "vectors",
      apiSecretKey: secret,
      apiVersion: ApiVersion.October25,
      isEmbeddedApp: false,
      hostName: "example.test",
      logger: { level: 0, log: () => {} },
    });
    const rawRequest = {
      method: "POST",
      url: "/webhooks",
      headers: Object.fromEntries(c.headers.map(([n, v]) => [n.toLowerCase(), v])),
    };
    const res = await shopify.webhooks.validate({
      rawBody: Buffer.from(c.body_b64, "base64").toString("utf8"),
      rawRequest,
      rawResponse: {},
    });
    if (res.valid) return { expected: "valid", secret_index: i };
    if (res.reason === "missing_hmac") return { expected: "missing" };
    if (res.reason !== "invalid_hmac") throw new Error(`${c.name}: unexpected reason ${res.reason}`);
  }
  return { expected: "invalid" };
}

const input = JSON.parse(readFileSync(0, "utf8"));
const out = { versions, cases: [] };
for (const c of input.cases ?? []) {
  const verdict = c.scheme === "github" ? await judgeGithub(c) : await judgeShopify(c);
  out.cases.push({ ...c, ...verdict });
}
process.stdout.write(JSON.stringify(out));
