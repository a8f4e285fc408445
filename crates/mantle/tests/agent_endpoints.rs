//! The agent's operator-facing endpoints against a real agent running a task, with a
//! finished and a failed one behind it: `/slave(1)/state`, `/files/*` (listings, reads,
//! downloads and the paths they refuse), `/flags`, `/metrics/snapshot`,
//! `/monitor/statistics` and the v1 operator API on `/api/v1` and `/api/v1/operator`.

mod common;

use base64::Engine;
use common::framework::{command_task, Framework};
use common::Cluster;
use mantle_api::*;
use serde_json::{json, Value};

/// The sandbox of `running` holds a link to `/etc`; `finished` writes 100,000 bytes.
const RUNNING: &str = "ln -s /etc escape; echo hello-running; sleep 60";
const FINISHED: &str = "head -c 100000 /dev/zero | tr '\\000' a > big; echo done";
const FAILED: &str = "echo failing >&2; exit 3";

struct Agent<'a> {
    cluster: &'a Cluster,
    address: String,
    framework_id: String,
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Agent<'_> {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// GET: the status, the headers and the body.
    async fn get(&self, path: &str) -> mantle_sdk::http::Response {
        let request = hyper::Request::get(self.url(path))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        self.cluster.http.raw(request).await.expect(path)
    }

    async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status, 200, "GET {path}: {:?}", response.body);
        serde_json::from_slice(&response.body).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn status(&self, path: &str) -> u16 {
        self.get(path).await.status.as_u16()
    }

    /// POSTs an operator call to `path`: the status and the body (JSON when it is).
    async fn call_at(&self, path: &str, call: Value) -> (u16, Value) {
        let request = hyper::Request::post(self.url(path))
            .header("Content-Type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                call.to_string(),
            )))
            .unwrap();
        let response = self.cluster.http.raw(request).await.expect(path);
        let text = String::from_utf8_lossy(&response.body).to_string();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (response.status.as_u16(), value)
    }

    /// An operator call that must succeed; returns its `get_x` body.
    async fn call(&self, kind: &str) -> Value {
        let (status, body) = self.call_at("/api/v1", json!({"type": kind})).await;
        assert_eq!(status, 200, "{kind}: {body}");
        assert_eq!(body["type"], kind, "{body}");
        body[kind.to_ascii_lowercase()].clone()
    }

    fn latest(&self, executor: &str) -> String {
        format!(
            "/frameworks/{}/executors/{executor}/runs/latest",
            self.framework_id
        )
    }
}

/// `keys` is a space-separated list of the keys `object` must have.
fn has_keys(what: &str, object: &Value, keys: &str) {
    let Some(map) = object.as_object() else {
        panic!("{what} is not an object: {object}")
    };
    let missing: Vec<&str> = keys
        .split_whitespace()
        .filter(|k| !map.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "{what} lacks {missing:?}: {object:#}");
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|i| i[key] == value))
        .unwrap_or_else(|| panic!("no {key}={value} in {list:#}"))
}

/// One agent running `running`, after `finished` and `failed` ended and their
/// executors completed.
async fn cluster_with_three_tasks() -> (Cluster, Framework) {
    let cluster = Cluster::start(1, "cpus:2;mem:1024;disk:1024;ports:[31000-31009]", &[]).await;
    let mut framework = Framework::subscribe(&cluster.master, "endpoints").await;
    let offer = framework.next_offers().await.remove(0);
    let tasks = vec![
        command_task("running", &offer, RUNNING, "cpus:0.2;mem:32"),
        command_task("finished", &offer, FINISHED, "cpus:0.2;mem:32"),
        command_task("failed", &offer, FAILED, "cpus:0.2;mem:32"),
    ];
    framework
        .scheduler
        .launch(offer.id, tasks, None)
        .await
        .unwrap();
    framework.wait_state("running", TaskState::Running).await;
    let timeout = std::time::Duration::from_secs(30);
    let finished = framework.wait_terminal("finished", timeout).await;
    assert_eq!(finished.state, TaskState::Finished);
    let failed = framework.wait_terminal("failed", timeout).await;
    assert_eq!(failed.state, TaskState::Failed);
    (cluster, framework)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_endpoints_serve_state_files_metrics_and_operator_calls() {
    let (cluster, framework) = cluster_with_three_tasks().await;
    let agent = Agent {
        cluster: &cluster,
        address: cluster.agents[0].clone(),
        framework_id: framework.id.value.to_string(),
    };
    // The executors of ended tasks complete once their updates are acknowledged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let state = loop {
        let state = agent.get_json("/slave(1)/state").await;
        let completed = state["frameworks"][0]["completed_executors"]
            .as_array()
            .map_or(0, Vec::len);
        if completed == 2 {
            break state;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "executors did not complete: {state:#}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    check_state(&agent, &state);
    check_files(&agent, &state).await;
    check_flags_and_metrics(&agent).await;
    check_operator_api(&agent, &state).await;
}

fn check_state(agent: &Agent<'_>, state: &Value) {
    has_keys(
        "agent /state",
        state,
        "version build_date build_time build_user start_time id pid hostname \
        capabilities resources reserved_resources unreserved_resources \
        reserved_resources_full unreserved_resources_full \
        reserved_resources_allocated unreserved_resources_allocated \
        resource_providers attributes master_hostname flags frameworks \
        completed_frameworks",
    );
    assert_eq!(state["pid"], format!("slave(1)@{}", agent.address));
    assert_eq!(state["resources"]["cpus"], 2.0);
    assert_eq!(state["resources"]["ports"], "[31000-31009]");
    assert_eq!(state["unreserved_resources"]["mem"], 1024.0);
    assert!(state["unreserved_resources_full"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["name"] == "cpus")));
    // Only `running` holds resources now.
    assert_eq!(state["unreserved_resources_allocated"]["cpus"], 0.2);
    assert!(state["flags"]["work_dir"].is_string());
    assert!(state["start_time"].is_f64());
    assert_eq!(state["completed_frameworks"], json!([]));

    let framework = &state["frameworks"][0];
    has_keys(
        "agent framework",
        framework,
        "id name user failover_timeout checkpoint hostname role capabilities \
        executors completed_executors",
    );
    assert_eq!(framework["id"], agent.framework_id.as_str());
    assert_eq!(framework["name"], "endpoints");
    let executor_keys =
        "id name source container directory resources tasks queued_tasks completed_tasks";
    let task_keys = "id name framework_id executor_id slave_id state resources role statuses";
    let running = find(&framework["executors"], "id", "running");
    has_keys("running executor", running, executor_keys);
    assert_eq!(
        running["name"],
        "Command Executor (Task: running) (Command: sh -c 'ln -s /etc esca...')"
    );
    assert_eq!(running["source"], "running");
    let directory = running["directory"].as_str().unwrap();
    assert!(
        directory.ends_with(&format!(
            "/executors/running/runs/{}",
            running["container"].as_str().unwrap()
        )),
        "{directory}"
    );
    assert!(std::path::Path::new(directory).is_dir());
    assert_eq!(running["resources"]["cpus"], 0.2);
    assert_eq!(running["queued_tasks"], json!([]));
    assert_eq!(running["completed_tasks"], json!([]));
    let task = &running["tasks"][0];
    has_keys("running task", task, task_keys);
    assert_eq!(task["state"], "TASK_RUNNING");
    assert_eq!(task["executor_id"], "", "command tasks have no executor id");
    assert_eq!(task["slave_id"], state["id"]);
    assert_eq!(task["resources"]["mem"], 32.0);
    assert!(task["statuses"][0]["timestamp"].is_f64());

    for (id, end) in [("finished", "TASK_FINISHED"), ("failed", "TASK_FAILED")] {
        let executor = find(&framework["completed_executors"], "id", id);
        has_keys(id, executor, executor_keys);
        assert_eq!(executor["tasks"], json!([]), "{id}");
        assert_eq!(executor["queued_tasks"], json!([]), "{id}");
        let task = &executor["completed_tasks"][0];
        has_keys(id, task, task_keys);
        assert_eq!(task["state"], end);
        let states: Vec<&str> = task["statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["state"].as_str().unwrap())
            .collect();
        assert_eq!(states.last(), Some(&end), "{states:?}");
    }
}

async fn check_files(agent: &Agent<'_>, state: &Value) {
    let running = find(&state["frameworks"][0]["executors"], "id", "running");
    let directory = running["directory"].as_str().unwrap().to_string();
    let latest = agent.latest("running");

    // Listings, under the virtual path and under the real one.
    let listing = agent
        .get_json(&format!("/files/browse?path={}", encode(&latest)))
        .await;
    let stdout = find(&listing, "path", &format!("{latest}/stdout"));
    has_keys("file info", stdout, "path nlink size mtime mode uid gid");
    assert!(
        stdout["mode"].as_str().unwrap().starts_with("-rw"),
        "{stdout}"
    );
    assert!(stdout["nlink"].is_u64() && stdout["mtime"].is_number());
    assert!(stdout["uid"].is_string() && stdout["gid"].is_string());
    let size = stdout["size"].as_u64().unwrap();
    assert_eq!(size, "hello-running\n".len() as u64);
    find(&listing, "path", &format!("{latest}/stderr"));
    let real = agent
        .get_json(&format!("/files/browse?path={}", encode(&directory)))
        .await;
    find(&real, "path", &format!("{directory}/stdout"));

    // The legacy aliases and JSONP, cross-origin.
    let response = agent
        .get(&format!(
            "/files/browse.json?path={}&jsonp=cb",
            encode(&latest)
        ))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.headers["content-type"], "text/javascript");
    assert_eq!(response.headers["access-control-allow-origin"], "*");
    assert!(response.body.starts_with(b"cb(["), "{:?}", response.body);

    // Reads: data, the size probe, past the end, the cap.
    let file = format!("{latest}/stdout");
    let read = |query: String| async move { agent.get_json(&format!("/files/read?{query}")).await };
    let data = read(format!("path={}&offset=0", encode(&file))).await;
    assert_eq!(data, json!({"data": "hello-running\n", "offset": 0}));
    let part = read(format!("path={}&offset=6&length=3", encode(&file))).await;
    assert_eq!(part, json!({"data": "run", "offset": 6}));
    let probe = read(format!("path={}&offset=-1", encode(&file))).await;
    assert_eq!(probe, json!({"data": "", "offset": size}));
    let probe_json = agent
        .get_json(&format!(
            "/files/read.json?path={}&offset=-1&length=1024",
            encode(&file)
        ))
        .await;
    assert_eq!(probe_json["offset"], size);
    let past = read(format!("path={}&offset=1000", encode(&file))).await;
    assert_eq!(past, json!({"data": "", "offset": size}));
    let big = format!("{}/big", agent.latest("finished"));
    let capped = read(format!("path={}&offset=10", encode(&big))).await;
    assert_eq!(capped["data"].as_str().unwrap().len(), 65536);
    assert!(capped["data"].as_str().unwrap().bytes().all(|b| b == b'a'));
    let failed_stderr = format!("{}/stderr", agent.latest("failed"));
    let stderr = read(format!("path={}&offset=0", encode(&failed_stderr))).await;
    assert!(
        stderr["data"].as_str().unwrap().contains("failing"),
        "{stderr}"
    );

    // Downloads.
    let download = agent
        .get(&format!("/files/download?path={}", encode(&file)))
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(&download.body[..], b"hello-running\n");
    assert_eq!(
        download.headers["content-disposition"],
        "attachment; filename=\"stdout\""
    );
    assert_eq!(download.headers["content-type"], "application/octet-stream");

    // What is refused.
    let refusals = [
        (format!("/files/read?path={}", encode(&latest)), 400),
        ("/files/read?offset=0".to_string(), 400),
        ("/files/browse".to_string(), 400),
        (
            format!("/files/read?path={}&offset=zero", encode(&file)),
            400,
        ),
        (format!("/files/download?path={}", encode(&latest)), 400),
        (
            format!(
                "/files/read?path={}&offset=0",
                encode(&format!("{latest}/nope"))
            ),
            404,
        ),
        (
            format!(
                "/files/browse?path={}",
                encode("/frameworks/unknown/executors/x/runs/latest")
            ),
            404,
        ),
        ("/files/read?path=%2Fetc%2Fpasswd&offset=0".to_string(), 403),
        ("/files/browse?path=%2Fetc".to_string(), 403),
        ("/files/download?path=%2Fetc%2Fpasswd".to_string(), 403),
        (
            format!(
                "/files/read?path={}&offset=0",
                encode(&format!("{latest}/../../../../../../../../etc/passwd"))
            ),
            403,
        ),
        (
            format!(
                "/files/download?path={}",
                encode(&format!(
                    "{directory}/../../../../../../../../../etc/passwd"
                ))
            ),
            403,
        ),
        // `escape` is a link to /etc inside the sandbox.
        (
            format!(
                "/files/read?path={}&offset=0",
                encode(&format!("{latest}/escape/passwd"))
            ),
            403,
        ),
        (
            format!("/files/browse?path={}", encode(&format!("{latest}/escape"))),
            403,
        ),
    ];
    for (path, expected) in refusals {
        let response = agent.get(&path).await;
        assert_eq!(
            response.status.as_u16(),
            expected,
            "{path}: {}",
            String::from_utf8_lossy(&response.body)
        );
        assert!(
            !String::from_utf8_lossy(&response.body).contains("root:"),
            "{path} leaked a host file"
        );
    }

    // The map of attachments.
    let debug = agent.get_json("/files/debug").await;
    assert_eq!(debug[latest.as_str()], directory.as_str());
    assert_eq!(debug[directory.as_str()], directory.as_str());
    assert!(debug[agent.latest("finished").as_str()].is_string());
}

async fn check_flags_and_metrics(agent: &Agent<'_>) {
    let flags = agent.get_json("/flags").await;
    assert!(flags["flags"]["work_dir"].is_string(), "{flags}");
    assert_eq!(
        flags["flags"]["resources"],
        "cpus:2;mem:1024;disk:1024;ports:[31000-31009]"
    );
    let response = agent.get("/slave(1)/flags?jsonp=f").await;
    assert!(response.body.starts_with(b"f({\"flags\""));

    let metrics = agent.get_json("/metrics/snapshot").await;
    let expected = [
        ("slave/registered", 1.0),
        ("slave/cpus_total", 2.0),
        ("slave/cpus_used", 0.2),
        ("slave/cpus_percent", 0.1),
        ("slave/mem_total", 1024.0),
        ("slave/mem_used", 32.0),
        ("slave/disk_total", 1024.0),
        ("slave/gpus_total", 0.0),
        ("slave/tasks_staging", 0.0),
        ("slave/tasks_starting", 0.0),
        ("slave/tasks_running", 1.0),
        ("slave/tasks_killing", 0.0),
        ("slave/tasks_finished", 1.0),
        ("slave/tasks_failed", 1.0),
        ("slave/tasks_killed", 0.0),
        ("slave/tasks_lost", 0.0),
        ("slave/executors_registering", 0.0),
        ("slave/executors_running", 1.0),
        ("slave/executors_terminating", 0.0),
        ("slave/executors_terminated", 2.0),
        ("slave/frameworks_active", 1.0),
        ("slave/recovery_errors", 0.0),
        ("slave/container_launch_errors", 0.0),
    ];
    for (name, value) in expected {
        let got = metrics[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} missing: {metrics:#}"));
        assert!(
            (got - value).abs() < 1e-9,
            "{name} = {got}, expected {value}"
        );
    }
    assert!(metrics["slave/uptime_secs"].as_f64().unwrap() > 0.0);
    assert!(metrics["slave/valid_status_updates"].as_f64().unwrap() >= 6.0);
    assert!(metrics["system/mem_total_bytes"].as_f64().unwrap() > 0.0);
    assert!(metrics.as_object().unwrap().values().all(Value::is_number));

    let statistics = agent.get_json("/monitor/statistics.json").await;
    let entry = find(&statistics, "executor_id", "running");
    has_keys(
        "statistics entry",
        entry,
        "executor_id executor_name framework_id source statistics",
    );
    has_keys(
        "statistics",
        &entry["statistics"],
        "timestamp cpus_user_time_secs cpus_system_time_secs cpus_limit \
        mem_rss_bytes mem_limit_bytes",
    );
    assert_eq!(entry["statistics"]["cpus_limit"], 0.2);
}

async fn check_operator_api(agent: &Agent<'_>, state: &Value) {
    assert_eq!(agent.call("GET_HEALTH").await, json!({"healthy": true}));
    let version = agent.call("GET_VERSION").await;
    let text = version["version_info"]["version"].as_str().unwrap();
    assert!(text.split('.').all(|p| p.parse::<u32>().is_ok()), "{text}");

    let flags = agent.call("GET_FLAGS").await;
    let work_dir = find(&flags["flags"], "name", "work_dir");
    assert_eq!(work_dir["value"], state["flags"]["work_dir"]);

    let metrics = agent.call("GET_METRICS").await;
    assert_eq!(
        find(&metrics["metrics"], "name", "slave/tasks_running")["value"],
        1.0
    );

    assert_eq!(agent.call("GET_LOGGING_LEVEL").await, json!({"level": 0}));
    let set = json!({
        "type": "SET_LOGGING_LEVEL",
        "set_logging_level": {"level": 2, "duration": {"nanoseconds": 60_000_000_000u64}},
    });
    assert_eq!(agent.call_at("/api/v1", set).await.0, 200);
    assert_eq!(agent.call("GET_LOGGING_LEVEL").await, json!({"level": 2}));
    let (status, body) = agent
        .call_at(
            "/api/v1",
            json!({"type": "SET_LOGGING_LEVEL", "set_logging_level": {"level": 1}}),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body.as_str()
            .unwrap()
            .contains("'set_logging_level': missing field `duration`"),
        "{body}"
    );

    let agent_id = state["id"].as_str().unwrap();
    let got = agent.call("GET_AGENT").await;
    assert_eq!(got["agent_info"]["id"]["value"], agent_id);
    assert_eq!(
        got["agent_info"]["port"].as_u64().unwrap().to_string(),
        agent.address.rsplit(':').next().unwrap()
    );
    assert!(got["agent_info"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "cpus" && r["scalar"]["value"] == 2.0));

    let frameworks = agent.call("GET_FRAMEWORKS").await;
    assert_eq!(
        frameworks["frameworks"][0]["framework_info"]["id"]["value"],
        agent.framework_id.as_str()
    );
    assert_eq!(
        frameworks["frameworks"][0]["framework_info"]["name"],
        "endpoints"
    );
    assert!(
        frameworks.get("completed_frameworks").is_none(),
        "empty lists are left out"
    );

    let executors = agent.call("GET_EXECUTORS").await;
    assert_eq!(executors["executors"].as_array().unwrap().len(), 1);
    let info = &executors["executors"][0]["executor_info"];
    assert_eq!(info["executor_id"]["value"], "running");
    assert_eq!(info["framework_id"]["value"], agent.framework_id.as_str());
    let completed: Vec<&str> = executors["completed_executors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["executor_info"]["executor_id"]["value"].as_str().unwrap())
        .collect();
    assert_eq!(completed.len(), 2);
    assert!(completed.contains(&"finished") && completed.contains(&"failed"));

    let tasks = agent.call("GET_TASKS").await;
    check_tasks(&tasks, agent_id);

    let full = agent.call("GET_STATE").await;
    has_keys("get_state", &full, "get_tasks get_executors get_frameworks");
    check_tasks(&full["get_tasks"], agent_id);
    assert_eq!(full["get_executors"], executors);
    assert_eq!(full["get_frameworks"], frameworks);

    let containers = agent.call("GET_CONTAINERS").await;
    let container = &containers["containers"][0];
    assert_eq!(container["executor_id"]["value"], "running");
    assert!(container["resource_statistics"]["mem_limit_bytes"].is_u64());

    // Files.
    let latest = agent.latest("running");
    let (status, listed) = agent
        .call_at(
            "/api/v1/operator",
            json!({"type": "LIST_FILES", "list_files": {"path": latest}}),
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let infos = &listed["list_files"]["file_infos"];
    let stdout = find(infos, "path", &format!("{latest}/stdout"));
    assert_eq!(stdout["size"], 14);
    assert_eq!(stdout["mode"].as_u64().unwrap() & 0o170000, 0o100000);
    assert!(stdout["mtime"]["nanoseconds"].as_i64().unwrap() > 0);
    assert!(stdout["uid"].is_string());
    let read = json!({
        "type": "READ_FILE",
        "read_file": {"path": format!("{latest}/stdout"), "offset": 6, "length": 3},
    });
    let (status, body) = agent.call_at("/slave(1)/api/v1", read).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["read_file"]["size"], 14);
    let data = base64::engine::general_purpose::STANDARD
        .decode(body["read_file"]["data"].as_str().unwrap())
        .unwrap();
    assert_eq!(data, b"run");
    let refused = [
        (
            json!({"type": "READ_FILE", "read_file": {"path": "/etc/passwd", "offset": 0}}),
            403,
        ),
        (
            json!({"type": "LIST_FILES", "list_files": {"path": format!("{latest}/../..")}}),
            403,
        ),
        (
            json!({
                "type": "READ_FILE",
                "read_file": {"path": format!("{latest}/nope"), "offset": 0},
            }),
            404,
        ),
        (
            json!({"type": "READ_FILE", "read_file": {"path": format!("{latest}/stdout")}}),
            400,
        ),
        (json!({"type": "LIST_FILES"}), 400),
        (json!({"type": "GET_NONSENSE"}), 400),
        (json!({"get_health": {}}), 400),
    ];
    for (call, expected) in refused {
        let (status, body) = agent.call_at("/api/v1", call.clone()).await;
        assert_eq!(status, expected, "{call}: {body}");
        assert!(
            !body.to_string().contains("root:"),
            "{call} leaked a host file"
        );
    }
    let (_, body) = agent
        .call_at("/api/v1", json!({"type": "GET_NONSENSE"}))
        .await;
    assert!(body.as_str().unwrap().contains("GET_NONSENSE"), "{body}");

    // Negotiation: a GET is 405, another content type 415.
    assert_eq!(agent.status("/api/v1").await, 405);
    let request = hyper::Request::post(agent.url("/api/v1/operator"))
        .header("Content-Type", "text/plain")
        .body(http_body_util::Full::new(bytes::Bytes::from("{}")))
        .unwrap();
    let response = agent.cluster.http.raw(request).await.unwrap();
    assert_eq!(response.status, 415);
}

/// The task lists of GET_TASKS: `running` launched, the others completed.
fn check_tasks(tasks: &Value, agent_id: &str) {
    let launched = tasks["launched_tasks"].as_array().expect("launched_tasks");
    assert_eq!(launched.len(), 1, "{tasks:#}");
    let task = &launched[0];
    has_keys(
        "v1 task",
        task,
        "name task_id framework_id agent_id state resources statuses",
    );
    assert_eq!(task["task_id"]["value"], "running");
    assert_eq!(task["agent_id"]["value"], agent_id);
    assert_eq!(task["state"], "TASK_RUNNING");
    assert!(
        task.get("executor_id").is_none(),
        "command tasks have no executor_id"
    );
    assert!(task["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "cpus" && r["scalar"]["value"] == 0.2));
    let status = &task["statuses"][0];
    assert!(
        status["timestamp"].is_f64() && status["uuid"].is_string(),
        "{status}"
    );
    assert!(status.get("data").is_none());
    let mut ended: Vec<(&str, &str)> = tasks["completed_tasks"]
        .as_array()
        .expect("completed_tasks")
        .iter()
        .map(|t| {
            (
                t["task_id"]["value"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
            )
        })
        .collect();
    ended.sort();
    assert_eq!(
        ended,
        [("failed", "TASK_FAILED"), ("finished", "TASK_FINISHED")]
    );
    assert!(tasks.get("queued_tasks").is_none() && tasks.get("terminated_tasks").is_none());
}
