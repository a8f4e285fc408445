//! Path resolution, listings and reads of `/files`, against a sandbox in a temporary
//! directory.

use super::*;

struct Fixture {
    _dir: tempfile::TempDir,
    sandbox: PathBuf,
    attachments: Attachments,
}

/// A work_dir with one executor run attached under its real path and the virtual
/// `/frameworks/F/executors/E/runs/latest`, holding `stdout`, `sub/inner`, a link to
/// `/etc` and a link to `stdout`; and a file next to the sandbox that is not attached.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let work_dir = fs::canonicalize(dir.path()).unwrap();
    let runs = work_dir.join("slaves/A/frameworks/F/executors/E/runs");
    let sandbox = runs.join("C");
    fs::create_dir_all(sandbox.join("sub")).unwrap();
    fs::write(sandbox.join("stdout"), b"hello\n").unwrap();
    fs::write(sandbox.join("sub/inner"), b"x").unwrap();
    fs::write(runs.join("secret"), b"not yours").unwrap();
    std::os::unix::fs::symlink("/etc", sandbox.join("etc")).unwrap();
    std::os::unix::fs::symlink(sandbox.join("stdout"), sandbox.join("out")).unwrap();
    std::os::unix::fs::symlink(runs.join("secret"), sandbox.join("sneaky")).unwrap();
    std::os::unix::fs::symlink("C", runs.join("latest")).unwrap();
    let mut paths = BTreeMap::new();
    paths.insert(path_text(&sandbox), sandbox.clone());
    paths.insert(
        "/frameworks/F/executors/E/runs/latest".to_string(),
        sandbox.clone(),
    );
    paths.insert(path_text(&runs.join("latest")), sandbox.clone());
    let attachments = Attachments {
        paths,
        sandbox_prefixes: vec![
            "/frameworks/".into(),
            format!("{}/", path_text(&work_dir.join("slaves"))),
        ],
    };
    Fixture {
        _dir: dir,
        sandbox,
        attachments,
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Found(&'static str),
    BadRequest,
    Forbidden,
    NotFound,
}

fn check(f: &Fixture, path: &str, expected: Outcome) {
    let got = match f.attachments.resolve(path) {
        Ok(real) => {
            let relative = real.strip_prefix(&f.sandbox).unwrap_or_else(|_| {
                panic!("{path} resolved outside the sandbox: {}", real.display())
            });
            let relative: &'static str = Box::leak(path_text(relative).into_boxed_str());
            Outcome::Found(relative)
        }
        Err(FilesError::BadRequest(_)) => Outcome::BadRequest,
        Err(FilesError::Forbidden(_)) => Outcome::Forbidden,
        Err(FilesError::NotFound(_)) => Outcome::NotFound,
        Err(FilesError::Internal(m)) => panic!("{path}: internal error {m}"),
    };
    assert_eq!(got, expected, "{path}");
}

#[test]
fn resolution() {
    let f = fixture();
    let real = path_text(&f.sandbox);
    let runs = path_text(f.sandbox.parent().unwrap());
    use Outcome::*;
    let rows: Vec<(String, Outcome)> = vec![
        ("/frameworks/F/executors/E/runs/latest".into(), Found("")),
        ("/frameworks/F/executors/E/runs/latest/".into(), Found("")),
        (
            "/frameworks/F/executors/E/runs/latest/stdout".into(),
            Found("stdout"),
        ),
        (
            "/frameworks/F/executors/E/runs/latest//sub/inner".into(),
            Found("sub/inner"),
        ),
        (format!("{real}/stdout"), Found("stdout")),
        (format!("{runs}/latest/stdout"), Found("stdout")),
        // A link that stays inside the sandbox is followed.
        (format!("{real}/out"), Found("stdout")),
        (
            "/frameworks/F/executors/E/runs/latest/missing".into(),
            NotFound,
        ),
        ("/frameworks/F/executors/OTHER/runs/latest".into(), NotFound),
        (format!("{runs}/secret"), NotFound),
        ("/etc/passwd".into(), Forbidden),
        ("/".into(), Forbidden),
        (
            "/frameworks/F/executors/E/runs/latest/../../E/runs/latest".into(),
            Forbidden,
        ),
        (format!("{real}/../secret"), Forbidden),
        (format!("{real}/./stdout"), Forbidden),
        // Links out of the sandbox are refused, wherever they lead.
        (format!("{real}/etc/passwd"), Forbidden),
        (format!("{real}/etc"), Forbidden),
        (format!("{real}/sneaky"), Forbidden),
        ("".into(), BadRequest),
        ("/frameworks/F\0".into(), BadRequest),
    ];
    for (path, expected) in rows {
        check(&f, &path, expected);
    }
}

#[test]
fn browse_lists_entries_under_the_path_asked_for() {
    let f = fixture();
    let listing = f
        .attachments
        .browse("/frameworks/F/executors/E/runs/latest/")
        .unwrap();
    let paths: Vec<&str> = listing.iter().map(|i| i.path.as_str()).collect();
    let base = "/frameworks/F/executors/E/runs/latest";
    // `etc` and `sneaky` point outside but are listed by what they point to, as in
    // Mesos; reading through them is what is refused.
    assert_eq!(
        paths,
        [
            format!("{base}/etc"),
            format!("{base}/out"),
            format!("{base}/sneaky"),
            format!("{base}/stdout"),
            format!("{base}/sub"),
        ]
    );
    let stdout = &listing[3];
    assert_eq!(stdout.size, 6);
    assert_eq!(stdout.nlink, 1);
    let legacy = stdout.legacy_json();
    assert!(legacy["mode"].as_str().unwrap().starts_with("-rw"));
    assert!(legacy["mtime"].is_f64());
    assert!(legacy["uid"].is_string() && legacy["gid"].is_string());
    assert!(listing[4].legacy_json()["mode"]
        .as_str()
        .unwrap()
        .starts_with('d'));
    let v1 = stdout.v1_json();
    assert_eq!(v1["mode"].as_u64().unwrap() as u32 & S_IFMT, S_IFREG);
    assert!(v1["mtime"]["nanoseconds"].as_i64().unwrap() > 0);
    // A file lists as itself.
    let one = f.attachments.browse(&format!("{base}/stdout")).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].path, format!("{base}/stdout"));
}

#[test]
fn reads() {
    let f = fixture();
    let path = "/frameworks/F/executors/E/runs/latest/stdout";
    let read = |offset, length| f.attachments.read(path, offset, length).unwrap();
    // No offset: the size, and no data (the pager's probe).
    let probe = read(None, Some(1024));
    assert_eq!((probe.offset, probe.data.len()), (6, 0));
    let all = read(Some(0), None);
    assert_eq!(
        (all.offset, all.text().as_str(), all.eof),
        (0, "hello\n", true)
    );
    let part = read(Some(1), Some(3));
    assert_eq!(
        (part.offset, part.text().as_str(), part.eof),
        (1, "ell", false)
    );
    let past = read(Some(100), Some(3));
    assert_eq!((past.offset, past.data.len()), (6, 0));
    let none = read(Some(2), Some(0));
    assert_eq!((none.offset, none.data.len()), (2, 0));
    assert!(matches!(
        f.attachments
            .read("/frameworks/F/executors/E/runs/latest/sub", Some(0), None),
        Err(FilesError::BadRequest(_))
    ));
}

#[test]
fn reads_are_capped_at_sixteen_pages() {
    let f = fixture();
    fs::write(f.sandbox.join("big"), vec![b'a'; 100_000]).unwrap();
    let chunk = f
        .attachments
        .read("/frameworks/F/executors/E/runs/latest/big", Some(10), None)
        .unwrap();
    assert_eq!(chunk.data.len() as u64, MAX_READ_LENGTH);
    assert_eq!(chunk.size, 100_000);
}

#[test]
fn a_character_cut_by_the_chunk_end_is_left_for_the_next_read() {
    let chunk = |data: &[u8], eof| Chunk {
        offset: 0,
        size: 10,
        data: data.to_vec(),
        eof,
    };
    assert_eq!(chunk("aé".as_bytes(), false).text(), "aé");
    assert_eq!(chunk(&"aé".as_bytes()[..2], false).text(), "a");
    assert_eq!(chunk(&"aé".as_bytes()[..2], true).text(), "a\u{fffd}");
    assert_eq!(chunk(b"a\xffb", false).text(), "a\u{fffd}b");
}

#[test]
fn modes_read_like_ls() {
    let rows = [
        (S_IFDIR | 0o755, "drwxr-xr-x"),
        (S_IFREG | 0o644, "-rw-r--r--"),
        (S_IFREG | 0o4755, "-rwsr-xr-x"),
        (S_IFREG | 0o2644, "-rw-r-Sr--"),
        (S_IFDIR | 0o1777, "drwxrwxrwt"),
        (S_IFLNK | 0o777, "lrwxrwxrwx"),
        (S_IFIFO | 0o600, "prw-------"),
    ];
    for (mode, expected) in rows {
        assert_eq!(mode_string(mode), expected, "{mode:o}");
    }
}

#[test]
fn id_files() {
    let names = parse_id_file("root:x:0:0:root:/root:/bin/bash\nbroken\nnobody:x:65534:\n");
    assert_eq!(names.get(&0).map(String::as_str), Some("root"));
    assert_eq!(names.get(&65534).map(String::as_str), Some("nobody"));
    assert_eq!(names.len(), 2);
}
