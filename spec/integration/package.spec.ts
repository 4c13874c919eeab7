import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// envalid's tslib (CommonJS) also defines its helpers as globals. Loaded here, before any test runs,
// so mocha's check-leaks sees what the package does, also when this file runs alone.
import 'envalid';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');
/** The consumer runs plain node: no tsx or other loader from this runner's NODE_OPTIONS. */
const CONSUMER_ENV = { ...process.env, NODE_OPTIONS: '' };

// Imports the built package by its own name, the way a user does after `npm install ws-timeouts`.
describe('the built package', () => {
  it('exports the manager, config loader, close codes and errors from "ws-timeouts"', async () => {
    const pkg = await import('ws-timeouts');
    expect(pkg.WebSocketTimeoutManager).to.be.a('function');
    expect(pkg.loadTimeoutConfig({}).idleTimeoutMs).to.equal(60_000);
    expect(pkg.CloseCode.IdleTimeout).to.equal(4001);
    expect(new pkg.ConfigError([])).to.be.instanceOf(Error);
  });

  it('exports the testing kit from "ws-timeouts/testing"', async () => {
    const testing = await import('ws-timeouts/testing');
    expect(testing.createSocketPair).to.be.a('function');
    expect(testing.createTestClock).to.be.a('function');
  });
});

interface Manifest {
  name: string;
  license?: string;
  repository?: { type: string; url: string };
  homepage?: string;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/** What a TypeScript consumer installs besides ws-timeouts' dependencies and peers: the types it compiles with. */
const CONSUMER_TYPES = ['@types/node', '@types/ws', '@types/express'];

// `npm pack` (with its prepack build), then a consumer project in a temp dir outside this repo:
// the tarball unpacked as node_modules/ws-timeouts, and only the declared dependencies, peers and
// the consumer's own types linked in from our node_modules (no network, nothing else reachable).
describe('the packed tarball, installed in a consumer project', function () {
  // npm pack runs the prepack build: tens of seconds alone, minutes on a busy shared machine.
  this.timeout(300_000);
  let temp: string;
  let files: string[];
  let installed: string;
  let manifest: Manifest;
  let consumer: string;

  before(() => {
    temp = mkdtempSync(join(tmpdir(), 'ws-timeouts-pack-'));
    const [packed] = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--pack-destination', temp], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
    ) as Array<{ filename: string; files: Array<{ path: string }> }>;
    files = packed!.files.map((f) => f.path).sort();

    consumer = join(temp, 'consumer');
    installed = join(consumer, 'node_modules/ws-timeouts');
    mkdirSync(installed, { recursive: true });
    execFileSync('tar', ['-xzf', join(temp, packed!.filename), '-C', installed, '--strip-components=1']);
    manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Manifest;

    const linked = new Set([...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {}), ...CONSUMER_TYPES]);
    for (const name of linked) {
      const target = join(consumer, 'node_modules', name);
      mkdirSync(dirname(target), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules', name), target, 'dir');
    }
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  });

  after(() => rmSync(temp, { recursive: true, force: true }));

  it('ships the licence, the docs, the built library and the sources its maps name, and no specs or examples', () => {
    expect(files).to.include.members(['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/testing/index.js']);
    // The guides the README links, so its links work in the installed package too.
    const guides = readdirSync(join(ROOT, 'guides')).map((name) => `guides/${name}`);
    expect(guides).to.include('guides/testing.md');
    expect(files.filter((f) => !/^(dist\/lib|lib)\//.test(f))).to.have.members(['LICENSE', 'README.md', 'CHANGELOG.md', 'package.json', ...guides]);
    expect(readFileSync(join(installed, 'LICENSE'), 'utf8')).to.match(/^MIT License\n\nCopyright \(c\) 2026 ws-timeouts contributors\n/);
  });

  it('has no source map that names a file missing from the tarball', () => {
    const maps = files.filter((f) => f.endsWith('.map'));
    for (const file of files.filter((f) => /\.(js|d\.ts)$/.test(f))) {
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(installed, file), 'utf8'))?.[1];
      if (url) expect(files, `${file} names its map ${url}`).to.include(join(dirname(file), url));
    }
    for (const map of maps) {
      const { sources, sourceRoot = '' } = JSON.parse(readFileSync(join(installed, map), 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const source of sources) {
        const shipped = relative(installed, resolve(installed, dirname(map), sourceRoot, source));
        expect(files, `${map} names ${source}`).to.include(shipped);
      }
    }
  });

  it('names its licence, repository and home page, and takes express and ws from the app (peer dependencies)', () => {
    expect(manifest.license).to.equal('MIT');
    expect(manifest.repository).to.deep.equal({ type: 'git', url: 'git+https://github.com/ws-timeouts/ws-timeouts.git' });
    expect(manifest.homepage).to.equal('https://github.com/ws-timeouts/ws-timeouts#readme');
    // One Express and one ws in the app: a second copy under ws-timeouts would not see the app's
    // settings, and `instanceof` checks between the two would fail.
    expect(manifest.peerDependencies).to.include.keys('express', 'ws');
    expect(manifest.dependencies ?? {}).to.not.have.any.keys('express', 'ws');
  });

  it('declares the type packages its .d.ts files import as optional peers (TypeScript apps install them; JavaScript apps need not)', () => {
    const declared = (manifest as { peerDependenciesMeta?: Record<string, { optional?: boolean }> }).peerDependenciesMeta ?? {};
    const imported = new Set<string>();
    for (const file of files.filter((f) => f.endsWith('.d.ts'))) {
      for (const [, name] of readFileSync(join(installed, file), 'utf8').matchAll(/from '((?:@types\/)?(?:ws|express|express-serve-static-core))'/g)) imported.add(name!);
    }
    expect([...imported]).to.include.members(['ws', 'express']);
    for (const types of ['@types/ws', '@types/express']) {
      expect(manifest.peerDependencies, types).to.have.property(types);
      expect(declared[types]?.optional, types).to.equal(true);
    }
  });

  it('loads with require() from a .cjs file, as the same module instance import() gives', () => {
    const script = join(consumer, 'check.cjs');
    writeFileSync(
      script,
      `const pkg = require('ws-timeouts');
const testing = require('ws-timeouts/testing');
import('ws-timeouts').then((esm) => {
  console.log(JSON.stringify({
    idleTimeoutMs: pkg.loadTimeoutConfig({}).idleTimeoutMs,
    manager: typeof pkg.WebSocketTimeoutManager,
    socketPair: typeof testing.createSocketPair,
    clock: typeof testing.createTestClock(),
    sameInstance: esm.WebSocketTimeoutManager === pkg.WebSocketTimeoutManager,
  }));
});
`,
    );
    const out = execFileSync(process.execPath, [script], { cwd: consumer, env: CONSUMER_ENV, encoding: 'utf8' });
    expect(JSON.parse(out)).to.deep.equal({ idleTimeoutMs: 60_000, manager: 'function', socketPair: 'function', clock: 'object', sameInstance: true });
  });

  it('type-checks a .cts consumer under module nodenext, and its compiled require() runs', () => {
    writeFileSync(
      join(consumer, 'check.cts'),
      `import { CloseCode, loadTimeoutConfig, type TimeoutConfig } from 'ws-timeouts';
import { createSocketPair } from 'ws-timeouts/testing';

const config: TimeoutConfig = loadTimeoutConfig({ WS_IDLE_TIMEOUT: '5' });
const { client } = createSocketPair();
const code: number = CloseCode.IdleTimeout;
console.log(JSON.stringify({ idleTimeoutMs: config.idleTimeoutMs, code, client: typeof client.send }));
`,
    );
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { module: 'nodenext', target: 'es2022', strict: true, skipLibCheck: true, types: ['node'], outDir: 'out' }, files: ['check.cts'] }),
    );
    try {
      execFileSync(process.execPath, [TSC, '-p', consumer], { cwd: consumer, env: CONSUMER_ENV, encoding: 'utf8' });
    } catch (err) {
      throw new Error(`tsc failed on the .cts consumer:\n${(err as { stdout?: string }).stdout ?? String(err)}`);
    }
    const compiled = join(consumer, 'out/check.cjs');
    expect(readFileSync(compiled, 'utf8')).to.include('require("ws-timeouts")');
    const out = execFileSync(process.execPath, [compiled], { cwd: consumer, env: CONSUMER_ENV, encoding: 'utf8' });
    expect(JSON.parse(out)).to.deep.equal({ idleTimeoutMs: 5_000, code: 4001, client: 'function' });
  });
});
