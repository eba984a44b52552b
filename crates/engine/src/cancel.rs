//! A cancellation signal shared by every worker (Ctrl-C, or a failed partition).

use std::sync::Arc;

use tokio::sync::watch;

/// Cloneable cancellation flag with an awaitable `cancelled()`.
#[derive(Clone, Debug)]
pub struct Cancel {
    tx: Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new()
    }
}

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Cancel {
        let (tx, rx) = watch::channel(false);
        Cancel {
            tx: Arc::new(tx),
            rx,
        }
    }

    /// Sets the flag; every `cancelled()` wakes up.
    pub fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// True once the flag is set.
    pub fn is_cancelled(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when the flag is set.
    pub async fn cancelled(&self) {
        let mut rx = self.rx.clone();
        // An error means the sender is gone, which cannot happen while `self` holds it.
        let _ = rx.wait_for(|v| *v).await;
    }
}
