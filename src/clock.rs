//! Local time, formatted the ways mail needs: RFC 5322 dates, ctime-style queue times and
//! the compact stamps in Message-Ids. localtime_r does the time-zone work (no TZ parsing).

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tm {
    pub year: i32,
    /// 0-11
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub min: u32,
    pub sec: u32,
    /// 0 = Sunday
    pub weekday: u32,
    /// Seconds east of UTC.
    pub gmtoff: i64,
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn local(t: i64) -> Tm {
    // SAFETY: localtime_r writes into the tm we own; time_t is i64 on the targets we build for.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let tt: libc::time_t = t as libc::time_t;
    let ok = unsafe { !libc::localtime_r(&tt, &mut tm).is_null() };
    if !ok {
        return utc(t);
    }
    Tm {
        year: tm.tm_year + 1900,
        month: tm.tm_mon as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        min: tm.tm_min as u32,
        sec: tm.tm_sec as u32,
        weekday: tm.tm_wday as u32,
        gmtoff: tm.tm_gmtoff,
    }
}

/// UTC without libc (civil-from-days, Howard Hinnant's algorithm).
pub fn utc(t: i64) -> Tm {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    Tm {
        year: y as i32,
        month: (m - 1) as u32,
        day: d as u32,
        hour: (secs / 3600) as u32,
        min: ((secs % 3600) / 60) as u32,
        sec: (secs % 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
        gmtoff: 0,
    }
}

/// RFC 5322 date: `Sun, 22 Nov 2026 05:31:40 +0000`.
pub fn rfc5322(tm: &Tm) -> String {
    let off = tm.gmtoff;
    let sign = if off < 0 { '-' } else { '+' };
    let a = off.abs();
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
        DAYS[tm.weekday as usize % 7],
        tm.day,
        MONTHS[tm.month as usize % 12],
        tm.year,
        tm.hour,
        tm.min,
        tm.sec,
        sign,
        a / 3600,
        (a % 3600) / 60
    )
}

/// ctime(3)'s first 16 characters, as mailq prints them: `Sun Nov 22 05:31`.
pub fn ctime16(tm: &Tm) -> String {
    format!(
        "{} {} {:2} {:02}:{:02}",
        DAYS[tm.weekday as usize % 7],
        MONTHS[tm.month as usize % 12],
        tm.day,
        tm.hour,
        tm.min
    )
}

/// ctime(3) without its newline, as mbox `From ` lines carry it: `Sun Nov 22 05:31:07 2026`.
pub fn ctime(tm: &Tm) -> String {
    format!("{}:{:02} {}", ctime16(tm), tm.sec, tm.year)
}

/// `YYYYMMDDhhmm`, the first part of sendmail's Message-Id.
pub fn stamp12(tm: &Tm) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}",
        tm.year,
        tm.month + 1,
        tm.day,
        tm.hour,
        tm.min
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_formats() {
        // 2026-11-22 05:31:40 UTC, a Sunday.
        let tm = utc(1_795_325_500);
        assert_eq!((tm.year, tm.month, tm.day), (2026, 10, 22));
        assert_eq!((tm.hour, tm.min, tm.sec, tm.weekday), (5, 31, 40, 0));
        assert_eq!(rfc5322(&tm), "Sun, 22 Nov 2026 05:31:40 +0000");
        assert_eq!(ctime16(&tm), "Sun Nov 22 05:31");
        assert_eq!(stamp12(&tm), "202611220531");
        let epoch = utc(0);
        assert_eq!(
            (epoch.year, epoch.month, epoch.day, epoch.weekday),
            (1970, 0, 1, 4)
        );
        let leap = utc(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 1, 29));
        let mut neg = utc(0);
        neg.gmtoff = -5 * 3600 - 30 * 60;
        assert!(rfc5322(&neg).ends_with("-0530"));
    }
}
