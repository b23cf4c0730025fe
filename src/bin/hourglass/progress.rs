//! What training shows while it runs: a progress bar (epoch, step, loss, samples/s, ETA) when
//! stdout is a terminal, plain lines when it is not, nothing with `--quiet`.

use std::io::IsTerminal;

use hourglass::train::LossReport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Ui;

const TEMPLATE: &str = "{prefix} [{bar:30.cyan/blue}] {pos}/{len} steps  {msg}  ETA {eta}";

/// The progress display of one training session.
pub struct Progress {
    bar: Option<ProgressBar>,
    ui: Ui,
    /// Plain mode: print a line at every read (`--log-every` was given).
    lines_per_read: bool,
}

impl Progress {
    /// Starts the display for a run of `total` steps that is at `step` now.
    pub fn start(total: u64, step: u64, ui: Ui, lines_per_read: bool) -> Self {
        let bar = (!ui.quiet && std::io::stdout().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
            let style = ProgressStyle::with_template(TEMPLATE)
                .expect("the template is valid")
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix("train");
            bar.set_position(step);
            bar.reset_eta();
            bar
        });
        Progress {
            bar,
            ui,
            lines_per_read,
        }
    }

    /// Shows the loss read at `step` of epoch `epoch` (of `epochs`): the bar shows the
    /// epoch's running mean `mean`, a plain line the loss of the step with its terms.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &self,
        step: u64,
        total: u64,
        epoch: u64,
        epochs: u64,
        loss: &LossReport,
        mean: f64,
        rate: f64,
    ) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(format!(
                    "epoch {epoch}/{epochs}  loss {mean:.5}  {rate:.0} samples/s"
                ));
            }
            None if self.lines_per_read => self.ui.say(&format!(
                "step {step:>7}/{total}  epoch {epoch:>4}  loss {loss}  {rate:>10.0} samples/s"
            )),
            None => {}
        }
    }

    /// A line that stays (an epoch's summary, a note), above the bar if there is one.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => self.ui.say(text),
        }
    }

    /// Removes the bar.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
