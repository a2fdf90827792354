//! Queue selection: what `-q` asks of a queue run, and which entries a run or a listing
//! takes.
//!
//! This module owns [`QueueRunArgs`] (everything `-q` said: `-q<time>`, `-qf`, `-qp`,
//! `-qG`, `-qL` and the filters), the filters themselves ([`QueueFilter`], [`FilterField`]:
//! sendmail's `-q[!]I`, `-q[!]R`, `-q[!]S`, `-q[!]Q` substrings) and sendmail's rule for
//! combining them ([`QueueRunArgs::selects`]: filters of one kind are alternatives, kinds
//! are combined with "and"; matching is `strcasestr`, [`contains_ignore_case`]).
//!
//! The command line (`cli`) fills a `QueueRunArgs` in; the queue sweep (`queue`), `mailq`
//! and the deliverer's queue runner read it, and the recipient index (`spool::index`)
//! narrows a `-qR` run with the same matching. It depends on nothing else in the crate.

/// Which part of a queue entry a `-qI/-qR/-qS` filter looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterField {
    QueueId,
    Recipient,
    Sender,
    /// `-qQ`: quarantine reason.
    Quarantine,
}

/// One `-q[!]<I|R|S|Q>substr` filter: case-insensitive substring, optionally negated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueFilter {
    pub field: FilterField,
    pub negate: bool,
    pub substring: String,
}

impl QueueFilter {
    pub fn matches(&self, text: &str) -> bool {
        let hit = contains_ignore_case(text, &self.substring);
        hit != self.negate
    }
}

/// ASCII case-insensitive substring test (sendmail uses strcasestr semantics).
pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    let h = haystack.as_bytes();
    let n = needle.as_bytes();
    h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Everything `-q` said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueRunArgs {
    /// `-q<time>`: run every interval seconds; `None` means run once.
    pub interval: Option<u64>,
    /// `-qf`: in the foreground.
    pub foreground: bool,
    /// `-qp[time]`: persistent runner.
    pub persistent: bool,
    pub filters: Vec<QueueFilter>,
    /// `-qG<group>`.
    pub group: Option<String>,
    /// `-qL`: lost items.
    pub lost: bool,
}

impl QueueRunArgs {
    /// sendmail's rule: filters of one kind are alternatives, kinds are combined with "and".
    pub fn selects(&self, id: &str, sender: &str, recipients: &[&str]) -> bool {
        let kinds = [
            FilterField::QueueId,
            FilterField::Sender,
            FilterField::Recipient,
        ];
        kinds.iter().all(|kind| {
            let of_kind: Vec<&QueueFilter> =
                self.filters.iter().filter(|f| f.field == *kind).collect();
            if of_kind.is_empty() {
                return true;
            }
            of_kind.iter().any(|f| match kind {
                FilterField::QueueId => f.matches(id),
                FilterField::Sender => f.matches(sender),
                FilterField::Recipient => {
                    if f.negate {
                        // "!" on recipients: no recipient matches.
                        recipients
                            .iter()
                            .all(|r| !contains_ignore_case(r, &f.substring))
                    } else {
                        recipients.iter().any(|r| f.matches(r))
                    }
                }
                FilterField::Quarantine => true,
            })
        })
    }
}

impl QueueRunArgs {
    /// Whether the run is a selection (`-qI`, `-qR`, `-qS`, negated or not): as in
    /// sendmail, a selection tries what it selects whether or not it was tried within
    /// `MinQueueAge` (compat-tests/cases/minqueueage-qR-tried, -qS-, -qI-, -qnotR-).
    pub fn is_selection(&self) -> bool {
        !self.filters.is_empty()
    }

    /// Whether the `-qI` filters (if any) can match this id: decided without opening it.
    pub fn id_may_match(&self, id: &str) -> bool {
        let of_kind: Vec<&QueueFilter> = self
            .filters
            .iter()
            .filter(|f| f.field == FilterField::QueueId)
            .collect();
        of_kind.is_empty() || of_kind.iter().any(|f| f.matches(id))
    }

    /// The `-qR` substrings when the recipient index can narrow the selection (the
    /// entries with a recipient containing one of them), or `None` when it cannot (no
    /// `-qR`, or a negated one).
    pub fn recipient_needles(&self) -> Option<Vec<&str>> {
        let of_kind: Vec<&QueueFilter> = self
            .filters
            .iter()
            .filter(|f| f.field == FilterField::Recipient)
            .collect();
        if of_kind.is_empty() || of_kind.iter().any(|f| f.negate) {
            return None;
        }
        Some(of_kind.iter().map(|f| f.substring.as_str()).collect())
    }
}
