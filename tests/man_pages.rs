//! The manual pages: `mandoc -T lint` finds nothing at warning level or above, every
//! option the command-line parser accepts is in rsendmail.8, every configuration
//! keyword and every option name of the table is in rsendmail.conf.5.

use crate::harness::require;
use rsendmail::cli;
use rsendmail::options::OPTION_TABLE;
use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

fn page(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("man")
        .join(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const PAGES: [&str; 5] = [
    "rsendmail.8",
    "rsendmail.conf.5",
    "mailq.1",
    "newaliases.8",
    "rsendmail-admin.8",
];

#[test]
fn pages_pass_mandoc_lint() {
    if !require("mandoc") {
        return;
    }
    for p in PAGES {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("man")
            .join(p);
        let out = Command::new("mandoc")
            .args(["-T", "lint", "-W", "warning"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{p}: {text}");
        // And the page renders to something of substance.
        let out = Command::new("mandoc")
            .args(["-T", "ascii"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(out.stdout.len() > 1000, "{p} renders to almost nothing");
    }
}

/// Whether the parser takes `args` as options (anything but "illegal option").
fn accepted(args: &[&str]) -> bool {
    let mut v: Vec<OsString> = vec!["sendmail".into()];
    v.extend(args.iter().map(OsString::from));
    match cli::parse(v) {
        Ok(_) => true,
        Err(f) => !f.message.contains("illegal option"),
    }
}

/// `.Fl X` with X followed by the end of the word (a blank, `Ns`, a line end ...).
fn has_flag(page: &str, flag: &str) -> bool {
    page.lines().any(|l| {
        l.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| {
                w[0].trim_start_matches('.') == "Fl" && w[1].trim_end_matches([',', ';']) == flag
            })
    })
}

#[test]
fn every_accepted_option_is_in_rsendmail_8() {
    let man = page("rsendmail.8");
    let mut letters: Vec<char> = ('a'..='z').chain('A'..='Z').chain('0'..='9').collect();
    letters.extend(['!', '?', '@', '+', '=']);
    let mut found = Vec::new();
    for c in letters {
        let opt = format!("-{c}");
        if accepted(&[&opt, "value", "rcpt"]) {
            found.push(c);
            match c {
                // Each operation mode and each queue-run letter is listed on its own.
                'b' | 'q' | 'A' => {}
                _ => assert!(has_flag(&man, &c.to_string()), "-{c} is not in rsendmail.8"),
            }
        }
    }
    // The parser does take options: an empty list would mean this test checks nothing.
    assert!(found.len() > 30, "{found:?}");
    assert!(
        !accepted(&["-Z"]),
        "-Z must be refused for this test to mean anything"
    );
    for m in ('a'..='z').chain('A'..='Z') {
        let modes = format!("-b{m}");
        let valid = match cli::parse(vec!["sendmail".into(), modes.clone().into()]) {
            Ok(_) => true,
            Err(f) => !f.message.contains("Invalid operation mode"),
        };
        if valid {
            assert!(
                has_flag(&man, &format!("b{m}")),
                "{modes} is not in rsendmail.8"
            );
        }
    }
    for q in ["f", "G", "I", "L", "p", "Q", "R", "S"] {
        assert!(accepted(&[&format!("-q{q}x")]));
        assert!(
            has_flag(&man, &format!("q{q}")),
            "-q{q} is not in rsendmail.8"
        );
    }
    for a in ["c", "m"] {
        assert!(
            man.contains(&format!("Fl A Ns Cm {a}")),
            "-A{a} is not in rsendmail.8"
        );
    }
    assert!(has_flag(&man, "-"), "-- is not in rsendmail.8");
    // mailq's own option.
    assert!(has_flag(&page("mailq.1"), "-json"));
}

#[test]
fn every_keyword_and_option_name_is_in_rsendmail_conf_5() {
    let man = page("rsendmail.conf.5");
    let documented = |name: &str| {
        man.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.windows(2).any(|p| {
                p[0].trim_start_matches('.') == "Cm"
                    && (p[1].trim_end_matches([',', '.']) == name
                        || p[1].starts_with(&format!("{name}.")))
            })
        })
    };
    for def in OPTION_TABLE {
        assert!(
            documented(def.name),
            "O {} is not in rsendmail.conf.5",
            def.name
        );
    }
    // The keywords are the match arms of the config parser.
    let src = fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/config.rs"))
        .unwrap();
    let keywords: Vec<&str> = src
        .lines()
        .filter_map(|l| {
            let t = l.trim_start();
            let rest = t.strip_prefix('"')?;
            let (word, after) = rest.split_once('"')?;
            (after.trim_start().starts_with("=>")
                && !word.is_empty()
                && word.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
            .then_some(word)
        })
        .collect();
    assert!(keywords.len() >= 20, "{keywords:?}");
    for k in keywords {
        assert!(documented(k), "keyword {k} is not in rsendmail.conf.5");
    }
}

/// Every subcommand `rsendmail-admin --help` lists is in the synopsis of
/// rsendmail-admin.8, and each queue subcommand has its entry under Commands.
#[test]
fn every_admin_subcommand_is_in_rsendmail_admin_8() {
    let man = page("rsendmail-admin.8");
    let out = Command::new(env!("CARGO_BIN_EXE_rsendmail-admin"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands: section")
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.len() >= 10, "{help}");
    let synopsis = man.split(".Sh DESCRIPTION").next().unwrap();
    for c in &commands {
        assert!(
            synopsis.contains(&format!("\n.Cm {c}\n")),
            "{c} is not in the synopsis"
        );
    }
    for c in [
        "list", "show", "delete", "hold", "release", "retry", "bounce",
    ] {
        assert!(man.contains(&format!(".It Cm {c} ")), "{c} has no entry");
    }
}

/// Every section and subsection of rsendmail-admin(8) has text of its own (a heading
/// followed at once by the next one renders empty), `init` is described with its
/// exit statuses, and STANDARDS is text, not a lone reference block.
#[test]
fn every_section_of_rsendmail_admin_8_has_text() {
    let man = page("rsendmail-admin.8");
    let lines: Vec<&str> = man.lines().filter(|l| !l.starts_with(".\\\"")).collect();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with(".Sh ") || l.starts_with(".Ss ") {
            let next = lines.get(i + 1).copied().unwrap_or("");
            // A section may open straight onto its first subsection.
            let ok = !(next.is_empty()
                || next.starts_with(".Sh ")
                || (l.starts_with(".Ss ") && next.starts_with(".Ss ")));
            assert!(ok, "{l} has no text (next line {next:?})");
        }
    }
    let standards = man.split(".Sh STANDARDS").nth(1).unwrap();
    assert!(
        !standards.trim_start().starts_with(".Rs"),
        "STANDARDS renders empty: {standards}"
    );
    let init = man.split(".Ss init").nth(1).unwrap();
    let init = init.split(".Sh ").next().unwrap();
    for want in [
        "Fl -group",
        "hold",
        "wakeup",
        "0620",
        "2770",
        "corrupt/",
        "idempotent",
        "77",
    ] {
        assert!(init.contains(want), "the init section lacks {want}");
    }
    let exit = man.split(".Sh EXIT STATUS").nth(1).unwrap();
    assert!(exit.contains(".Cm init\nexits 0"), "EXIT STATUS lacks init");
}

/// rsendmail.8 names exactly the options of the table that a user may give without
/// costing a set-group-id program its group (sendmail's safe ones).
#[test]
fn the_safe_options_are_listed() {
    let text = page("rsendmail.8");
    let start = text
        .find("The safe ones are")
        .expect("the safe options' list");
    let end = start + text[start..].find("cost the group too").expect("its end");
    let listed: Vec<&str> = text[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix(".Cm "))
        .flat_map(|l| l.split(" , "))
        .map(|w| w.trim().trim_end_matches([' ', ',', ';']).trim())
        .filter(|w| !w.is_empty())
        .collect();
    let mut safe: Vec<&str> = OPTION_TABLE
        .iter()
        .filter(|d| d.safe)
        .map(|d| d.name)
        .collect();
    let mut shown = listed.clone();
    safe.sort_unstable();
    shown.sort_unstable();
    assert_eq!(shown, safe);
}

/// Every page's SEE ALSO names every other page, and README's list of the manual pages
/// names them all.
#[test]
fn every_page_is_named_in_see_also_and_in_readme() {
    let xr = |p: &str| {
        let (name, section) = p.rsplit_once('.').unwrap();
        (
            format!(".Xr {name} {section}"),
            format!("`{name}({section})`"),
        )
    };
    for p in PAGES {
        let text = page(p);
        let see_also = text
            .split(".Sh SEE ALSO")
            .nth(1)
            .and_then(|t| t.split("\n.Sh ").next())
            .unwrap_or_else(|| panic!("{p}: no SEE ALSO"));
        for other in PAGES.iter().filter(|o| **o != p) {
            let (x, _) = xr(other);
            assert!(see_also.contains(&x), "{p}: SEE ALSO lacks {x}");
        }
    }
    let readme = fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .unwrap()
        .replace('\n', " ");
    let list = readme
        .split("The manual pages are ")
        .nth(1)
        .and_then(|t| t.split(';').next())
        .expect("README names the manual pages");
    for p in PAGES {
        let (_, named) = xr(p);
        assert!(list.contains(&named), "README's list lacks {named}: {list}");
    }
}

/// README tells users, whose PATH has no sbin, the full path of `rsendmail-admin`.
#[test]
fn readme_gives_users_the_path_of_rsendmail_admin() {
    let readme =
        fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Administering the queue")
        .nth(1)
        .and_then(|t| t.split("\n## ").next())
        .unwrap();
    assert!(
        section.contains("/usr/sbin/rsendmail-admin")
            && section.contains("/usr/local/sbin/rsendmail-admin"),
        "{section}"
    );
    assert!(page("rsendmail-admin.8").contains("/usr/sbin/rsendmail-admin"));
}
