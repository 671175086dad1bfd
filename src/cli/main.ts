/** The `exitgate` command line (SPEC §3). Wiring only: each command lives in its own file. */
import { Command, CommanderError } from 'commander';
import { UsageError } from './errors';
import { collect } from './args';
import { serve } from './serve';
import { validate } from './validate';
import { check } from './check';
import { renderBootstrap } from './bootstrap';
import { renderRedirectRules } from './redirect-rules';
import { sidecar } from './sidecar';
import { runEnvoy } from './envoy';
import { status } from './status';
import { demo } from './demo';
import { caInit, cert } from './ca';

/** The options `bootstrap` and `sidecar` share: both describe one sidecar's bootstrap. */
function withBootstrapOptions(cmd: Command): Command {
  return cmd
    .requiredOption('--node <tenant/agent/instance>', 'node id')
    .requiredOption('--xds <host:port>', 'the control plane xDS address')
    .requiredOption('--listen <ip:port>', 'the proxy address the agent uses (transparent: where redirected connections arrive)')
    .option('--mode <mode>', 'proxy | transparent', 'proxy')
    .option('--tls-dir <dir>', 'sidecar certificate for xDS mTLS')
    .option('--admin-socket <path>', 'unix socket for the Envoy admin interface')
    .option('--xds-protocol <protocol>', 'sotw | delta | sotw-per-type | delta-per-type', 'delta');
}

function program(setExit: (code: number) => void): Command {
  const p = new Command('exitgate')
    .description('Egress control plane for AI agents: policies in, Envoy sidecars enforcing them')
    .configureOutput({ outputError: (str, write) => write(`exitgate: ${str.replace(/^error: /, '')}`) })
    .exitOverride()
    .showHelpAfterError('(run `exitgate --help` for usage)');

  p.command('serve')
    .description('run the control plane; policies from a watched directory')
    .requiredOption('--policies <dir>', 'policy directory (watched; changes apply live)')
    .option('--xds-listen <host:port>', 'xDS (ADS) listen address', '127.0.0.1:18000')
    .option('--admin-listen <host:port>', 'admin API listen address', '127.0.0.1:18001')
    .option('--insecure-xds', 'serve xDS without mTLS (loopback development only)')
    .option('--tls-dir <dir>', 'ca.crt, tls.crt, tls.key for xDS mTLS')
    .option('--dns-resolver <host:port>', 'DNS server the sidecars resolve destinations with (default: the system resolver)')
    .option('--guard-allow <cidr>', 'exempt a range from the private-address guard (repeatable)', collect, [])
    .option('--upstream-ca <file>', 'trust bundle for TLS that sidecars originate')
    .option('--state-dir <dir>', 'state kept across restarts (drain epochs); default: a directory per policy directory under the temp dir')
    .option('--config <file>', 'configuration file (YAML): admin API tokens, `admin: {tokens: [...]}` and `tenants: {<tenant>: {tokens: [...]}}` (also EXITGATE_ADMIN_TOKENS=tok,... and EXITGATE_TENANT_TOKENS=tenant:tok,...)')
    .option('--log-level <level>', 'log level (trace, debug, info, warn, error)', 'info')
    .option('--decisions-log <file>', 'write decision events (one JSON line each) to this file instead of the main log')
    .action(async (flags) => serve(flags));

  p.command('validate')
    .description('validate policy files; exit 0, or 1 with one error per line')
    .argument('<path...>', 'policy files or directories')
    .action(async (paths: string[]) => setExit(await validate(paths)));

  p.command('check')
    .description('offline verdict for a target: exit 0 allow, 3 deny')
    .requiredOption('--policies <dir>', 'policy directory')
    .requiredOption('--node <tenant/agent/instance>', 'the node whose policy applies')
    .option('-X, --method <method>', 'HTTP method of a plain-HTTP target (default GET)')
    .argument('<target>', 'https://host[:port]/path, http://host[:port]/path or host:port')
    .action(async (target: string, flags) => setExit(await check(flags, target)));

  withBootstrapOptions(p.command('bootstrap').description('print the Envoy bootstrap YAML for a sidecar'))
    .action((flags) => {
      process.stdout.write(renderBootstrap(flags));
    });

  p.command('redirect-rules')
    .description("print the nftables script (run with `nft -f`) that redirects an agent's TCP to its transparent sidecar and drops its other traffic")
    .requiredOption('--listen-port <port>', 'the transparent listener port (bootstrap --mode transparent --listen)')
    .requiredOption('--proxy-uid <uid>', 'the uid Envoy runs as (exempt from the redirect)')
    .option('--allow-udp <cidr:port>', 'a UDP destination the agent may reach directly (repeatable)', collect, [])
    .action((flags) => {
      process.stdout.write(renderRedirectRules(flags));
    });

  withBootstrapOptions(p.command('sidecar').description('bootstrap and run a managed Envoy (the pinned version, installed if missing)'))
    .option('--log-level <level>', 'Envoy log level', 'warn')
    .action(async (flags) => setExit(await sidecar(flags)));

  p.command('envoy')
    .description('run the pinned Envoy binary (e.g. `exitgate envoy --version`)')
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]', 'arguments for Envoy')
    .action(async (args: string[]) => setExit(await runEnvoy(args)));

  p.command('status')
    .description('connected nodes: versions sent and acknowledged per type, NACK errors')
    .option('--admin <host:port>', 'admin API address', '127.0.0.1:18001')
    .option('--token-file <file>', 'file holding an admin or tenant token (default: $EXITGATE_TOKEN)')
    .action(async (flags) => setExit(await status(flags)));

  const ca = p.command('ca').description('a CA for xDS mTLS');
  ca.command('init')
    .description('create a CA (ca.crt, ca.key, trust-domain) in DIR')
    .argument('<dir>', 'directory for the CA')
    .option('--trust-domain <name>', 'SPIFFE trust domain', 'exitgate.local')
    .option('--valid-days <n>', 'CA validity in days', '3650')
    .action(async (dir: string, flags) => setExit(await caInit(dir, flags)));

  p.command('cert')
    .description('issue a sidecar certificate (--node) or the control plane serving certificate (--server --name)')
    .option('--node <tenant/agent/instance>', 'sidecar certificate for this node (URI SAN spiffe://<td>/tenant/<T>/agent/<A>)')
    .option('--server', 'the control plane serving certificate')
    .option('--name <host>', 'DNS name or IP the sidecars dial (repeatable, with --server)', collect, [])
    .requiredOption('--ca <dir>', 'CA directory (from `exitgate ca init`)')
    .requiredOption('--out <dir>', 'output directory (ca.crt, tls.crt, tls.key: a --tls-dir)')
    .option('--valid-hours <n>', 'validity in hours (default 24 for sidecars, 2160 for servers)')
    .action(async (flags) => setExit(await cert(flags)));

  p.command('demo')
    .description('the whole story on one machine: control plane, DNS, upstreams, a real Envoy sidecar and a compromised agent')
    .option('--once', 'exit after one run instead of waiting for Ctrl-C')
    .action(async (flags) => setExit(await demo(flags)));

  return p;
}

export async function main(argv: string[]): Promise<void> {
  let exitCode = 0;
  try {
    await program((code) => (exitCode = code)).parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) exitCode = err.exitCode === 0 ? 0 : 2;
    else if (err instanceof UsageError) {
      process.stderr.write(`exitgate: ${err.message}\n`);
      exitCode = err.exitCode;
    } else {
      process.stderr.write(`exitgate: internal error: ${(err as Error).stack ?? String(err)}\n`);
      exitCode = 70;
    }
  }
  process.exitCode = exitCode;
}
