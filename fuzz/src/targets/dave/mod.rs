//! The DAVE targets: scripts of DAVE messages, media and audio on a DAVE-negotiated connection.

pub mod mls;
mod run;
mod script;

use super::*;
use run::DaveRun;
pub use script::*;

/// A [`DaveScript`] on a DAVE-negotiated connection, checking after every step that DAVE input
/// never ends the connection, that every DAVE output answers something (op 26 after a recovery,
/// a new group or a new session; op 28 after proposals; op 23 for an announced transition; op 31
/// for a failed commit or welcome or after decrypt failures), that op 26 and op 28 carry one
/// well-formed KeyPackage and one commit plus welcome, that transitions take effect exactly when
/// op 22 names a prepared one (or at once for id 0), that `dave_status()`,
/// `dave_active_protocol_version()` and `dave_epoch()` agree with the events, and that sending
/// and receiving follow the status; every [`Driver`] invariant holds as well.
pub fn dave_script(script: &DaveScript) -> DaveReport {
    run_dave_script(script, false)
}

/// [`dave_script`] printing every step and its outputs (a debugging aid).
pub fn dave_script_traced(script: &DaveScript) -> DaveReport {
    run_dave_script(script, true)
}

fn run_dave_script(script: &DaveScript, trace: bool) -> DaveReport {
    let mut run = DaveRun::start();
    run.trace = trace;
    for (i, step) in script.steps.iter().enumerate() {
        if trace {
            println!("{i:3}: {step:?}");
        }
        run.step(step);
        // A reconnect completes a held-back handshake first and may hold back its own.
        if !matches!(step, DaveStep::Reconnect | DaveStep::Rejoin { .. }) {
            run.early_step_done();
        }
        run.play();
    }
    run.finish();
    if trace {
        println!("{:?}", run.report);
    }
    run.report
}

/// [`dave_script`] over raw bytes, as libFuzzer and the corpus replay call it; `None` when this
/// build cannot speak DAVE (the `dave` feature of `voice-proto` is off) or the bytes end early.
pub fn dave_binary_report(data: &[u8]) -> Option<DaveReport> {
    if voice_proto::dave::SUPPORTED_PROTOCOL_VERSION == 0 {
        return None;
    }
    let script = DaveScript::arbitrary(&mut Unstructured::new(data)).ok()?;
    Some(dave_script(&script))
}

/// The `dave_binary` target: the bytes as a [`DaveScript`] of DAVE ops 21, 22, 24, 25, 27, 29, 30
/// (with real MLS messages from the seeds, and our own commits and welcomes echoed back) and
/// media, run by [`dave_script`].
pub fn dave_binary(data: &[u8]) {
    let _ = dave_binary_report(data);
}

/// The scripted DAVE handshake: both dispatches, Hello, Ready (AES-GCM), discovery, Session
/// Description with `dave_protocol_version: 1`, then op 5 mapping the other member's SSRC.
pub fn dave_handshake_steps() -> Vec<Step> {
    let mut steps = handshake_steps(0b0001);
    if let Some(Step::Text {
        message: ServerText::SessionDescription { dave, .. },
        ..
    }) = steps.last_mut()
    {
        *dave = 1;
    }
    steps.push(text_step(ServerText::Speaking {
        user: OTHER_USER.0,
        ssrc: 0,
        flags: 1,
    }));
    steps
}

/// The configuration the [`dave_binary`] target connects with: DAVE version 1 offered.
pub fn dave_config() -> ScriptConfig {
    ScriptConfig {
        rtp_seed: 0,
        flags: 1,
    }
}
