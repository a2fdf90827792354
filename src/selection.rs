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

/// [`contains_ignore_case`] for an address (a `-qR`/`-qS` substring, `rsendmail-admin
/// --recipient`): the address's domain counts in both its forms, so `-qRbücher` finds
/// `u@xn--bcher-kva.example` and `-qRxn--bcher` finds `u@bücher.example` (U-labels as
/// A-labels and back, IDNA 2008 with UTS #46 mapping, the `idna` crate). A domain with
/// no other form is matched as written.
pub fn address_contains(addr: &str, needle: &str) -> bool {
    // Beyond ASCII, case is folded as Unicode folds it (`BÜCHER` finds `bücher`).
    let hit = |h: &str| {
        contains_ignore_case(h, needle)
            || (!(h.is_ascii() && needle.is_ascii())
                && contains_ignore_case(&h.to_lowercase(), &needle.to_lowercase()))
    };
    if hit(addr) {
        return true;
    }
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    let is_a_label = |d: &str| {
        d.split('.')
            .any(|l| l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--")))
    };
    let other = if !domain.is_ascii() {
        crate::message::address::ascii_domain(domain)
    } else if is_a_label(domain) {
        match idna::domain_to_unicode(domain) {
            (u, Ok(())) => Some(u),
            _ => None,
        }
    } else {
        None
    };
    other.is_some_and(|d| hit(&format!("{local}@{d}")))
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

/// The name of the one queue group, sendmail's default group's (`-qGmqueue`).
pub const QUEUE_GROUP: &str = "mqueue";

impl QueueRunArgs {
    /// The `-qG` name when it names no group: such a run runs nothing, as in sendmail
    /// (which says `Queue group NAME unknown`; recorded: `q-G-unknown`).
    pub fn unknown_group(&self) -> Option<&str> {
        self.group.as_deref().filter(|g| *g != QUEUE_GROUP)
    }

    /// sendmail's rule: filters of one kind are alternatives, kinds are combined with "and".
    /// A queued (not held) entry; see [`QueueRunArgs::selects_entry`].
    pub fn selects(&self, id: &str, sender: &str, recipients: &[&str]) -> bool {
        self.selects_entry(false, id, sender, recipients)
    }

    /// Whether the entry is selected. `held`: an entry `rsendmail-admin hold` set aside,
    /// which listings mark as sendmail marks a quarantined one (`QUARANTINE: held`).
    /// `-qQ[substr]` and `-q!Q[substr]` take quarantined entries only, as in sendmail
    /// (the substring matched against the reason, `held`): a queue run never sees a held
    /// entry, so such a run runs nothing (recorded: `q-Q-quarantined-none`). `-qL`
    /// (sendmail's lost entries: there are none) and an unknown `-qG` group select
    /// nothing.
    pub fn selects_entry(&self, held: bool, id: &str, sender: &str, recipients: &[&str]) -> bool {
        if self.lost || self.unknown_group().is_some() {
            return false;
        }
        let quarantine: Vec<&QueueFilter> = self
            .filters
            .iter()
            .filter(|f| f.field == FilterField::Quarantine)
            .collect();
        let quarantined = held && quarantine.iter().any(|f| f.matches("held"));
        if !quarantine.is_empty() && !quarantined {
            return false;
        }
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
                FilterField::Sender => address_contains(sender, &f.substring) != f.negate,
                FilterField::Recipient => {
                    if f.negate {
                        // "!" on recipients: no recipient matches.
                        recipients
                            .iter()
                            .all(|r| !address_contains(r, &f.substring))
                    } else {
                        recipients.iter().any(|r| address_contains(r, &f.substring))
                    }
                }
                FilterField::Quarantine => true,
            })
        })
    }
}

impl QueueRunArgs {
    /// Whether the run is a selection: any `-qI`, `-qR` or `-qS`, negated or not and
    /// empty or not, or a `-qQ` with a reason (ETRN and `rsendmail-admin retry` select
    /// too). sendmail's rule: such a run sets MinQueueAge aside and tries what it
    /// selects; `-q`, `-qf`, `-q<time>` and a bare `-qQ` do not
    /// (compat-tests/cases/minqueueage-qR-tried, -qS-, -qI-, -qnotR-, and the empty
    /// forms minqueueage-qR-empty, -qS-, -qI-).
    pub fn is_selection(&self) -> bool {
        self.filters
            .iter()
            .any(|f| f.field != FilterField::Quarantine || !f.substring.is_empty())
    }

    /// Whether the `-qI` filters (if any) can match this id: decided without opening it.
    /// Asked of every name in the spool: no list is made.
    pub fn id_may_match(&self, id: &str) -> bool {
        let mut of_kind = self
            .filters
            .iter()
            .filter(|f| f.field == FilterField::QueueId)
            .peekable();
        of_kind.peek().is_none() || of_kind.any(|f| f.matches(id))
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
        // An empty `-qR` matches every entry: the index cannot narrow it.
        if of_kind.is_empty() || of_kind.iter().any(|f| f.negate || f.substring.is_empty()) {
            return None;
        }
        Some(of_kind.iter().map(|f| f.substring.as_str()).collect())
    }
}
