//! The tables of the format, named once. [`for_each_table!`] lists them (variant, file
//! name, row type) and hands the list to a macro of the caller's, so per-table struct
//! fields, `match` arms and arrays are generated from this one list; [`TableId`] is the
//! list as a value. A new table is one line here plus its module.
//!
//! The order is fixed: it is the order of [`crate::TABLES`], of every per-table counter
//! array and of the eBPF stream bits (bit `1 << index` of the tables a kernel program
//! feeds), so new tables go at the end.

/// Calls `$callback!` with every table as `Variant file_name row::Type;`, in order.
#[macro_export]
macro_rules! for_each_table {
    ($callback:ident) => {
        $callback! {
            Retransmits retransmits $crate::retransmits::Retransmit;
            StateChanges state_changes $crate::state_changes::StateChange;
            Resets resets $crate::resets::Reset;
            RttSamples rtt_samples $crate::rtt_samples::RttSample;
            Flows flows $crate::flows::Flow;
            Sockets sockets $crate::sockets::Socket;
            Listeners listeners $crate::listeners::Listener;
            Drops drops $crate::drops::Drop;
            HostCounters host_counters $crate::host_counters::HostCounters;
            RecorderStats recorder_stats $crate::recorder_stats::RecorderStats;
        }
    };
}

/// Like [`for_each_table!`], for the event tables only (rows made from kernel events,
/// see [`TableId::is_event`]), the first ones of the list.
#[macro_export]
macro_rules! for_each_event_table {
    ($callback:ident) => {
        $callback! {
            Retransmits retransmits $crate::retransmits::Retransmit;
            StateChanges state_changes $crate::state_changes::StateChange;
            Resets resets $crate::resets::Reset;
            RttSamples rtt_samples $crate::rtt_samples::RttSample;
            Flows flows $crate::flows::Flow;
            Sockets sockets $crate::sockets::Socket;
            Listeners listeners $crate::listeners::Listener;
            Drops drops $crate::drops::Drop;
        }
    };
}

macro_rules! table_id {
    ($($id:ident $name:ident $row:path;)*) => {
        /// A table of the format.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum TableId {
            $($id,)*
        }

        impl TableId {
            /// Number of tables.
            pub const COUNT: usize = 0 $(+ { let _ = stringify!($id); 1 })*;
            /// Every table, in the format's order.
            pub const ALL: [TableId; Self::COUNT] = [$(TableId::$id,)*];

            /// The table's name: its directory in a recording and its SQL name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(TableId::$id => stringify!($name),)*
                }
            }
        }
    };
}
for_each_table!(table_id);

impl TableId {
    /// Position in [`TableId::ALL`] (and in per-table arrays).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The table called `name`, if it is one.
    pub fn from_name(name: &str) -> Option<TableId> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Rows made from kernel events (as opposed to the recorder's own periodic
    /// tables, `host_counters` and `recorder_stats`).
    pub const fn is_event(self) -> bool {
        !matches!(self, TableId::HostCounters | TableId::RecorderStats)
    }

    /// The bit that enables the eBPF programs feeding this table (`raw::stream`), or 0
    /// for a table no program feeds directly (`sockets` is made from the others' events).
    pub const fn stream_bit(self) -> u32 {
        match self {
            TableId::Sockets | TableId::HostCounters | TableId::RecorderStats => 0,
            t => 1 << t as u32,
        }
    }
}

/// Every table's name, in [`TableId::ALL`] order.
pub const TABLES: [&str; TableId::COUNT] = {
    let mut names = [""; TableId::COUNT];
    let mut i = 0;
    while i < TableId::COUNT {
        names[i] = TableId::ALL[i].name();
        i += 1;
    }
    names
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_tables_are_the_first_ones_and_the_event_list_says_the_same() {
        macro_rules! names {
            ($($id:ident $name:ident $row:path;)*) => { [$(stringify!($name)),*] };
        }
        let events = crate::for_each_event_table!(names);
        let all = crate::for_each_table!(names);
        assert_eq!(all, TABLES);
        assert_eq!(&TABLES[..events.len()], &events[..]);
        assert!(TableId::ALL.iter().all(|t| t.is_event() == (t.index() < events.len())));
    }

    #[test]
    fn names_round_trip_and_stream_bits_are_distinct() {
        let mut bits = 0u32;
        for t in TableId::ALL {
            assert_eq!(TableId::from_name(t.name()), Some(t));
            assert_eq!(bits & t.stream_bit(), 0, "{t:?} shares a stream bit");
            bits |= t.stream_bit();
        }
        assert_eq!(TableId::from_name("nope"), None);
    }
}
