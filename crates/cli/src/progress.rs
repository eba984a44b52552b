//! Progress display: a live bar per stream on a terminal, periodic plain lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tsmigrate_engine::report::thousands;
use tsmigrate_engine::{PreparedStream, StreamCounters};

/// How progress is shown (`--progress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    /// Always bars.
    Bar,
    /// Plain lines every 10 seconds.
    Lines,
    /// Nothing.
    Off,
}

/// Shows progress until [`Progress::stop`] is called.
pub struct Progress {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts showing progress of `streams`.
    pub fn start(streams: Vec<Arc<PreparedStream>>, mode: ProgressMode) -> Progress {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let bars = match mode {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Bar => true,
            ProgressMode::Lines | ProgressMode::Off => false,
        };
        let task = if mode == ProgressMode::Off {
            tokio::spawn(async {})
        } else if bars {
            tokio::spawn(show_bars(streams, rx))
        } else {
            tokio::spawn(show_lines(streams, rx))
        };
        Progress { stop, task }
    }

    /// Stops and clears the display.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn show_bars(
    streams: Vec<Arc<PreparedStream>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(5));
    let style = ProgressStyle::with_template(
        "{prefix:>12.bold} [{bar:30}] {human_pos}/{human_len} rows  {msg}  ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let width = streams.iter().map(|s| s.spec.name.len()).max().unwrap_or(8);
    let bars: Vec<ProgressBar> = streams
        .iter()
        .map(|s| {
            let b = multi.add(ProgressBar::new(
                StreamCounters::get(&s.counters.estimated_rows).max(1),
            ));
            b.set_style(style.clone());
            b.set_prefix(format!("{:>width$}", s.spec.name));
            b
        })
        .collect();
    loop {
        for (s, b) in streams.iter().zip(&bars) {
            let c = &s.counters;
            let read = StreamCounters::get(&c.rows_read);
            if read > b.length().unwrap_or(0) {
                b.set_length(read);
            }
            b.set_position(read);
            let secs = c.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { read as f64 / secs } else { 0.0 };
            b.set_message(format!(
                "{} rows/s  {}/{} partitions",
                thousands(rate as u64),
                StreamCounters::get(&c.partitions_done),
                StreamCounters::get(&c.partitions_total)
            ));
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => break,
        }
    }
    for b in &bars {
        b.finish_and_clear();
    }
    let _ = multi.clear();
}

async fn show_lines(
    streams: Vec<Arc<PreparedStream>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            _ = stop.changed() => break,
        }
        for s in &streams {
            let c = &s.counters;
            if c.is_finished() || StreamCounters::get(&c.rows_read) == 0 {
                continue;
            }
            let read = StreamCounters::get(&c.rows_read);
            let est = StreamCounters::get(&c.estimated_rows).max(read).max(1);
            let secs = c.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { read as f64 / secs } else { 0.0 };
            eprintln!(
                "{}: {} / ~{} rows ({:.0}%), {} rows/s, {}/{} partitions",
                s.spec.name,
                thousands(read),
                thousands(est),
                100.0 * read as f64 / est as f64,
                thousands(rate as u64),
                StreamCounters::get(&c.partitions_done),
                StreamCounters::get(&c.partitions_total)
            );
        }
    }
}
