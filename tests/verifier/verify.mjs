// An independent check of the service's credentials with Digital Bazaar's libraries.
//
// Reads from stdin {credential, documents} where `documents` maps a URL or DID to what the
// service publishes there (the DID document, the status list credential), and prints
// {verified, revoked, errors}. JSON-LD contexts come only from the folder the service ships
// (argv[2], with its index.json); nothing is fetched from the network.
import {readFileSync} from 'node:fs';
import {join} from 'node:path';

import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {checkStatus} from '@digitalbazaar/vc-bitstring-status-list';

const contextsDir = process.argv[2];
const index = JSON.parse(readFileSync(join(contextsDir, 'index.json'), 'utf8'));
const contexts = new Map(Object.entries(index).map(
  ([url, file]) => [url, JSON.parse(readFileSync(join(contextsDir, file), 'utf8'))]));

const input = JSON.parse(readFileSync(0, 'utf8'));
const documents = new Map(Object.entries(input.documents || {}));

async function documentLoader(url) {
  if(contexts.has(url)) {
    return {contextUrl: null, documentUrl: url, document: contexts.get(url)};
  }
  const [base, fragment] = url.split('#');
  if(!documents.has(base)) {
    throw new Error(`Not served to this verifier: ${url}`);
  }
  const document = documents.get(base);
  if(fragment === undefined || !base.startsWith('did:')) {
    return {contextUrl: null, documentUrl: url, document};
  }
  // A DID URL with a fragment names one verification method of the DID document.
  const method = (document.verificationMethod || []).find(m => m.id === url);
  if(!method) {
    throw new Error(`No verification method ${url} in the DID document.`);
  }
  return {
    contextUrl: null,
    documentUrl: url,
    document: {'@context': document['@context'], ...method}
  };
}

const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022});
const result = await vc.verifyCredential({
  credential: input.credential, suite, documentLoader, checkStatus
});
const errors = [];
const collect = error => {
  if(!error) {
    return;
  }
  for(const one of (error.errors || [error])) {
    errors.push(String(one.message || one));
  }
};
collect(result.error);
for(const r of result.results || []) {
  collect(r.error);
}
if(result.statusResult && !result.statusResult.verified) {
  collect(result.statusResult.error);
}
process.stdout.write(JSON.stringify({
  verified: Boolean(result.verified),
  // One result per status entry; a set bit on a revocation list means revoked.
  revoked: result.statusResult ? (result.statusResult.results || []).some(
    r => r.credentialStatus.statusPurpose === 'revocation' && r.status === true) : null,
  errors
}) + '\n');
