//! The master's legacy JSON endpoints beside `/master/state` (reference §4) on a cluster
//! with a running, a finished and a failed task: their field names and types, the
//! `/master/tasks` paging, JSONP, the path aliases, `/master/flags` and the Prometheus
//! `/metrics`.

mod common;
#[path = "common/mixed.rs"]
mod mixed;

use common::checks::MASTER_STATE_KEYS;
use common::Cluster;
use mixed::check_keys;
use serde_json::Value;

/// GETs `path` on the master: the status, the Content-Type and the body.
async fn get(cluster: &Cluster, path: &str) -> (u16, String, String) {
    let request = hyper::Request::get(cluster.url(path))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = cluster.http.raw(request).await.expect(path);
    let content_type = response
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&response.body).to_string();
    (response.status.as_u16(), content_type, body)
}

async fn get_json(cluster: &Cluster, path: &str) -> Value {
    let (status, _, body) = get(cluster, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path} is not JSON ({e}): {body}"))
}

fn task_ids(tasks: &Value) -> Vec<String> {
    tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_endpoints_carry_the_mesos_fields() {
    let (cluster, framework) = mixed::mixed_tasks("legacy").await;
    let fid = framework.id.value.clone();

    // /master/state keeps completed tasks and has every top-level key of reference §4.
    let state = get_json(&cluster, "/master/state").await;
    check_keys("/master/state", &state, MASTER_STATE_KEYS);
    let fw = &state["frameworks"][0];
    assert_eq!(fw["tasks"][0]["id"], "runner");
    assert!(fw["unreachable_tasks"].is_array());
    let mut completed: Vec<&str> = fw["completed_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    completed.sort();
    assert_eq!(completed, ["TASK_FAILED", "TASK_FINISHED"]);

    // state-summary: agents and frameworks with task counts per state.
    let summary = get_json(&cluster, "/master/state-summary").await;
    check_keys(
        "state-summary",
        &summary,
        &["hostname", "slaves", "frameworks"],
    );
    let slave = &summary["slaves"][0];
    check_keys(
        "state-summary slave",
        slave,
        &[
            "id",
            "hostname",
            "pid",
            "resources",
            "used_resources",
            "TASK_STAGING",
            "TASK_STARTING",
            "TASK_RUNNING",
            "TASK_KILLING",
            "TASK_FINISHED",
            "TASK_KILLED",
            "TASK_FAILED",
            "TASK_LOST",
            "TASK_ERROR",
            "TASK_UNREACHABLE",
            "framework_ids",
        ],
    );
    assert_eq!(slave["TASK_RUNNING"], 1);
    assert_eq!(slave["TASK_FINISHED"], 1);
    assert_eq!(slave["TASK_FAILED"], 1);
    assert_eq!(slave["TASK_KILLED"], 0);
    assert_eq!(slave["framework_ids"], serde_json::json!([fid]));
    let summary_fw = &summary["frameworks"][0];
    check_keys(
        "state-summary framework",
        summary_fw,
        &["id", "name", "active", "TASK_RUNNING", "slave_ids"],
    );
    assert!(
        summary_fw.get("tasks").is_none(),
        "the summary lists no tasks"
    );
    assert_eq!(summary_fw["TASK_RUNNING"], 1);
    assert_eq!(summary_fw["slave_ids"][0], slave["id"]);

    // frameworks, by id, with the trailing slash avmesos-cli uses.
    let frameworks = get_json(&cluster, "/master/frameworks/").await;
    check_keys(
        "frameworks",
        &frameworks,
        &[
            "frameworks",
            "completed_frameworks",
            "unregistered_frameworks",
        ],
    );
    assert_eq!(frameworks["frameworks"][0]["id"], &*fid);
    let one = get_json(&cluster, &format!("/frameworks?framework_id={fid}")).await;
    assert_eq!(one["frameworks"].as_array().unwrap().len(), 1);
    let none = get_json(&cluster, "/master/frameworks?framework_id=nosuch").await;
    assert!(none["frameworks"].as_array().unwrap().is_empty());

    // slaves, with the v1 resource arrays.
    let slave_id = slave["id"].as_str().unwrap().to_string();
    let slaves = get_json(&cluster, &format!("/master/slaves?slave_id={slave_id}")).await;
    check_keys("slaves", &slaves, &["slaves", "recovered_slaves"]);
    let full = &slaves["slaves"][0];
    check_keys(
        "slave",
        full,
        &[
            "id",
            "pid",
            "hostname",
            "resources",
            "reserved_resources_full",
            "unreserved_resources_full",
            "used_resources_full",
            "offered_resources_full",
        ],
    );
    let unreserved = full["unreserved_resources_full"].as_array().unwrap();
    let cpus = unreserved.iter().find(|r| r["name"] == "cpus").unwrap();
    assert_eq!(cpus["type"], "SCALAR");
    assert_eq!(cpus["scalar"]["value"], 4.0);
    assert_eq!(cpus["role"], "*");
    let used_cpus = full["used_resources_full"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "cpus")
        .unwrap();
    assert_eq!(used_cpus["scalar"]["value"], 0.5);
    let nobody = get_json(&cluster, "/master/slaves?slave_id=nosuch").await;
    assert!(nobody["slaves"].as_array().unwrap().is_empty());

    // roles, with the legacy quota shape.
    let roles = get_json(&cluster, "/master/roles").await;
    let role = &roles["roles"][0];
    check_keys(
        "role",
        role,
        &[
            "name",
            "weight",
            "quota",
            "resources",
            "allocated",
            "offered",
            "reserved",
            "frameworks",
        ],
    );
    check_keys(
        "role quota",
        &role["quota"],
        &["role", "guarantee", "limit", "consumed"],
    );
    assert_eq!(role["allocated"]["cpus"], 0.5);

    // flags: `{"flags": {name: value}}`, all strings.
    let flags = get_json(&cluster, "/master/flags").await;
    let port = cluster.master.rsplit(':').next().unwrap();
    assert_eq!(flags["flags"]["port"], port);
    assert!(flags["flags"]
        .as_object()
        .unwrap()
        .values()
        .all(Value::is_string));

    // JSONP on each endpoint.
    for path in [
        "/master/state-summary",
        "/master/frameworks",
        "/master/slaves",
        "/master/tasks",
        "/master/flags",
        "/master/roles",
    ] {
        let (status, content_type, body) = get(&cluster, &format!("{path}?jsonp=cb")).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(content_type, "text/javascript", "{path}");
        assert!(
            body.starts_with("cb({") && body.ends_with(");"),
            "{path}: {body}"
        );
    }
    let (status, _, body) = get(&cluster, "/master/tasks?jsonp=a%3Cb").await;
    assert_eq!(status, 400);
    assert!(body.contains("jsonp"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_paged_and_ordered() {
    let (cluster, framework) = mixed::mixed_tasks("tasks").await;
    let fid = framework.id.value.clone();
    let all = get_json(&cluster, "/master/tasks").await;
    assert_eq!(all["tasks"].as_array().unwrap().len(), 3);
    let task = &all["tasks"][0];
    for key in [
        "id",
        "name",
        "framework_id",
        "executor_id",
        "slave_id",
        "state",
        "resources",
        "statuses",
    ] {
        assert!(task.get(key).is_some(), "task lacks {key}: {task}");
    }
    assert!(task["executor_id"].is_string());
    let mut states: Vec<String> = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap().to_string())
        .collect();
    states.sort();
    assert_eq!(states, ["TASK_FAILED", "TASK_FINISHED", "TASK_RUNNING"]);

    // Descending by the first status's time is the default; ascending reverses it.
    let first_time = |t: &Value| t["statuses"][0]["timestamp"].as_f64().unwrap();
    let times: Vec<f64> = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(first_time)
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    let ascending = get_json(&cluster, "/master/tasks?order=asc&limit=-1").await;
    let mut reversed = task_ids(&ascending);
    reversed.reverse();
    assert_eq!(reversed, task_ids(&all));

    let page = get_json(&cluster, "/master/tasks?limit=1&offset=1").await;
    assert_eq!(task_ids(&page), [task_ids(&all)[1].clone()]);
    let past = get_json(&cluster, "/tasks.json?offset=5").await;
    assert!(past["tasks"].as_array().unwrap().is_empty());
    let limited = get_json(&cluster, "/master/tasks?limit=2").await;
    assert_eq!(limited["tasks"].as_array().unwrap().len(), 2);

    let one = get_json(&cluster, "/master/tasks?task_id=done").await;
    assert_eq!(task_ids(&one), ["done"]);
    assert_eq!(one["tasks"][0]["state"], "TASK_FINISHED");
    let mine = get_json(&cluster, &format!("/master/tasks/?framework_id={fid}")).await;
    assert_eq!(mine["tasks"].as_array().unwrap().len(), 3);
    let others = get_json(&cluster, "/master/tasks?framework_id=nosuch").await;
    assert!(others["tasks"].as_array().unwrap().is_empty());

    for (query, parameter) in [
        ("limit=many", "limit"),
        ("offset=-2", "offset"),
        ("order=up", "order"),
    ] {
        let (status, _, body) = get(&cluster, &format!("/master/tasks?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(parameter), "{query}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_follow_the_text_format() {
    let (cluster, _framework) = mixed::mixed_tasks("prometheus").await;
    let (status, content_type, body) = get(&cluster, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(
        body.contains("# TYPE master_tasks_running gauge\n"),
        "{body}"
    );
    assert!(body.contains("\nmaster_tasks_running 1\n"), "{body}");
    assert!(body.contains("\nmaster_tasks_finished 1\n"), "{body}");
    assert!(body.contains("\nmaster_tasks_failed 1\n"), "{body}");
    assert!(body.contains("\nmaster_elected 1\n"), "{body}");
    // Every sample line is a valid name and a number, after its HELP and TYPE lines.
    let lines: Vec<&str> = body.lines().collect();
    for chunk in lines.chunks(3) {
        assert!(chunk[0].starts_with("# HELP "), "{chunk:?}");
        assert!(chunk[1].starts_with("# TYPE "), "{chunk:?}");
        let (name, value) = chunk[2].split_once(' ').unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("{}", chunk[2]));
    }
    // The JSON snapshot and the Prometheus text agree.
    let snapshot = get_json(&cluster, "/metrics/snapshot").await;
    assert_eq!(snapshot["master/tasks_running"], 1.0);
}
