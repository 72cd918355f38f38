//! `magpie sandbox`: the bank emulator (Plaid, SimpleFIN, GoCardless) on localhost, for trying Magpie
//! without a bank. It prints how to point a server at it and a credential of each kind to link with.

use std::net::SocketAddr;

use clap::Args;
use magpie_sandbox::{Sandbox, SandboxConfig};

/// `magpie sandbox` flags.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Address the emulator listens on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub addr: SocketAddr,
    /// Transactions each new fake bank starts with.
    #[arg(long, default_value_t = 240)]
    pub transactions: usize,
    /// Days of history each new fake bank has (a first sync reaches back `sync_initial_days`, 90).
    #[arg(long, default_value_t = 90)]
    pub history_days: u32,
    /// Seed of the fake banks (same seed, same banks).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Run the emulator until Ctrl-C.
pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    let cfg = SandboxConfig {
        seed: args.seed,
        transactions_per_bank: args.transactions,
        history_days: args.history_days.clamp(1, 730),
        ..SandboxConfig::default()
    };
    let running = Sandbox::new(cfg).start(args.addr).await?;
    let base = running.url();
    let (public_token, _) = running.sandbox.plaid_public_token(None);
    let (setup_token, _) = running.sandbox.simplefin_setup_token();
    println!("Magpie bank sandbox on {base} (Plaid, SimpleFIN, GoCardless). Start the server with:\n");
    println!(
        "  MAGPIE_PLAID_BASE_URL={base}/plaid MAGPIE_PLAID_CLIENT_ID=sandbox-client-id MAGPIE_PLAID_SECRET=sandbox-secret \\"
    );
    println!("  MAGPIE_SIMPLEFIN_ALLOWED_HOSTS={} \\", running.simplefin_host());
    println!("  MAGPIE_GOCARDLESS_BASE_URL={base}/gocardless MAGPIE_GOCARDLESS_SECRET_ID=sandbox-secret-id \\");
    println!("  MAGPIE_GOCARDLESS_SECRET_KEY=sandbox-secret-key magpie serve\n");
    println!("Then POST /api/v1/connections with one of these (each works once):");
    println!("  {{\"provider\": \"PLAID\", \"public_token\": \"{public_token}\"}}");
    println!("  {{\"provider\": \"SIMPLEFIN\", \"setup_token\": \"{setup_token}\"}}");
    println!("  GoCardless: POST /api/v1/connections/gocardless/requisitions, open its link, then");
    println!("  {{\"provider\": \"GOCARDLESS\", \"requisition_id\": \"...\"}}\n");
    println!("More tokens: POST {base}/plaid/sandbox/public_token/create, POST {base}/_sandbox/simplefin/setup-token.");
    println!(
        "Bank activity: POST {base}/_sandbox/banks/<id>/activity; faults: POST {base}/_sandbox/faults. See {base}/"
    );
    crate::app::shutdown_signal().await;
    Ok(())
}
