//! Tests of the factorial logic: the bignum, the data encodings, offer packing and the
//! handling of status updates.

use super::*;
use mantle_api::{Reason, Resources};
use serde_json::json;

const FACTORIAL_70: &str =
    "11978571669969891796072783721689098736458938142546425857555362864628009582789845319680000000000000000";

fn check(n: u32, digits: &str) {
    assert_eq!(factorial(n).to_decimal(), digits, "{n}!");
}

#[test]
fn factorials() {
    check(0, "1");
    check(1, "1");
    check(5, "120");
    check(10, "3628800");
    check(12, "479001600");
    check(13, "6227020800");
    check(20, "2432902008176640000");
    check(25, "15511210043330985984000000");
    check(70, FACTORIAL_70);
    assert_eq!(FACTORIAL_70.len(), 101);
    let hundred = factorial(100).to_decimal();
    assert_eq!(hundred.len(), 158);
    assert!(
        hundred.starts_with("93326215443944152681699238856266700490715968264381621468592963895217"),
        "{hundred}"
    );
    assert!(
        hundred.ends_with(&format!("864{}", "0".repeat(24))),
        "{hundred}"
    );
    assert_eq!(factorial(MAX_N).to_decimal().len(), 35660);
}

#[test]
fn factorials_match_machine_integers() {
    let mut expected: u128 = 1;
    for n in 0..=34u32 {
        if n > 1 {
            expected *= u128::from(n);
        }
        check(n, &expected.to_string());
    }
}

#[test]
fn limbs_keep_inner_zeros() {
    let mut x = Natural::one();
    x.mul_small(1_000_000_000);
    assert_eq!(x.to_decimal(), "1000000000");
    x.mul_small(1_000_000_007);
    assert_eq!(x.to_decimal(), "1000000007000000000");
    x.mul_small(0);
    assert_eq!(x.to_decimal(), "0");
}

fn check_number(data: Option<&str>, expected: Result<u32, &str>) {
    match (decode_number(data), expected) {
        (Ok(got), Ok(want)) => assert_eq!(got, want, "{data:?}"),
        (Err(err), Err(needle)) => assert!(err.contains(needle), "{data:?}: {err}"),
        (got, want) => panic!("{data:?}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn task_data() {
    assert_eq!(encode_number(70), "NzA=");
    check_number(Some("NzA="), Ok(70));
    check_number(Some(&encode_number(0)), Ok(0));
    check_number(Some(&encode_number(MAX_N)), Ok(MAX_N));
    check_number(Some(&base64_encode(b" 12\n")), Ok(12));
    check_number(None, Err("task data is missing"));
    check_number(Some("!!"), Err("not valid base64"));
    check_number(Some(&base64_encode(&[0xff, 0xfe])), Err("not UTF-8"));
    check_number(
        Some(&base64_encode(b"seven")),
        Err("\"seven\" is not a whole number"),
    );
    check_number(Some(&base64_encode(b"-1")), Err("not a whole number"));
    check_number(Some(&base64_encode(b"")), Err("not a whole number"));
    check_number(
        Some(&base64_encode(b"10001")),
        Err("larger than the largest supported number 10000"),
    );
    check_number(Some(&base64_encode(b"99999999999999")), Err("larger than"));

    assert_eq!(
        decode_result(Some(&encode_result("120"))),
        Ok("120".to_string())
    );
    assert!(decode_result(None).unwrap_err().contains("missing"));
    assert!(decode_result(Some(&encode_result("12a")))
        .unwrap_err()
        .contains("not a decimal number"));
}

#[test]
fn task_ids() {
    assert_eq!(task_id(70), TaskId::new("factorial-70"));
    assert_eq!(number_of(&task_id(70)), Some(70));
    assert_eq!(number_of(&TaskId::new("factorial-")), None);
    assert_eq!(number_of(&TaskId::new("factorial-+1")), None);
    assert_eq!(number_of(&TaskId::new("other-1")), None);
}

fn spec() -> TaskSpec {
    TaskSpec {
        cpus: 1.0,
        mem: 10.0,
        executor_path: "/opt/factorial-executor".into(),
    }
}

fn offer(id: &str, agent: &str, resources: &str) -> Offer {
    Offer {
        id: OfferId::new(id),
        framework_id: FrameworkId::new("F"),
        agent_id: AgentId::new(agent),
        hostname: "h".into(),
        url: None,
        resources: Resources::parse_text(resources, "*").unwrap().to_wire(),
        attributes: vec![],
        executor_ids: vec![],
        unavailability: None,
        allocation_info: None,
    }
}

/// The numbers each action launches, or the offers it declines.
fn summary(actions: &[OfferAction]) -> Vec<String> {
    actions
        .iter()
        .map(|action| match action {
            OfferAction::Launch {
                offer_id,
                tasks,
                filters,
            } => {
                let ns: Vec<String> = tasks
                    .iter()
                    .map(|t| number_of(&t.task_id).unwrap().to_string())
                    .collect();
                let refuse = filters.as_ref().map(|f| f.refuse_seconds);
                format!("launch {offer_id} [{}] refuse {refuse:?}", ns.join(" "))
            }
            OfferAction::Decline { offer_ids, filters } => {
                let ids: Vec<String> = offer_ids.iter().map(ToString::to_string).collect();
                let refuse = filters.as_ref().map(|f| f.refuse_seconds);
                format!("decline [{}] refuse {refuse:?}", ids.join(" "))
            }
        })
        .collect()
}

fn check_offers(numbers: &[u32], offers: &[Offer], expected: &[&str]) {
    let mut framework = Framework::new(numbers, spec()).unwrap();
    assert_eq!(
        summary(&framework.offers(offers, None)),
        expected,
        "{numbers:?}"
    );
}

#[test]
fn packing_offers() {
    check_offers(
        &[5, 7, 10],
        &[offer("o1", "a1", "cpus:4;mem:100")],
        &["launch o1 [5 7 10] refuse Some(30.0)"],
    );
    check_offers(
        &[5, 7, 10],
        &[offer("o1", "a1", "cpus:2;mem:100")],
        &["launch o1 [5 7] refuse None"],
    );
    check_offers(
        &[5, 7, 10],
        &[offer("o1", "a1", "cpus:4;mem:25")],
        &["launch o1 [5 7] refuse None"],
    );
    check_offers(
        &[5],
        &[offer("o1", "a1", "cpus:0.5;mem:100")],
        &["decline [o1] refuse None"],
    );
    check_offers(
        &[5],
        &[offer("o1", "a1", "mem:100")],
        &["decline [o1] refuse None"],
    );
    check_offers(
        &[5, 7, 10],
        &[
            offer("o1", "a1", "cpus:2;mem:100"),
            offer("o2", "a2", "cpus:2;mem:100"),
            offer("o3", "a3", "cpus:8;mem:100"),
        ],
        &[
            "launch o1 [5 7] refuse None",
            "launch o2 [10] refuse Some(30.0)",
            "decline [o3] refuse Some(30.0)",
        ],
    );
    // Thousandths, not floating point: ten tasks of 0.1 cpus fit in one cpu.
    let mut framework = Framework::new(
        &(0..10).collect::<Vec<_>>(),
        TaskSpec {
            cpus: 0.1,
            mem: 1.0,
            ..spec()
        },
    )
    .unwrap();
    let actions = framework.offers(&[offer("o1", "a1", "cpus:1;mem:10")], None);
    let OfferAction::Launch { tasks, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(tasks.len(), 10);
}

#[test]
fn tasks_take_resources_from_every_role_of_the_offer() {
    let mut framework = Framework::new(
        &[5],
        TaskSpec {
            cpus: 1.5,
            ..spec()
        },
    )
    .unwrap();
    let mut offer = offer("o1", "a1", "cpus:1;mem:100");
    offer
        .resources
        .extend(Resources::parse_text("cpus(web):1", "*").unwrap().to_wire());
    let actions = framework.offers(&[offer], Some(&FrameworkId::new("F")));
    let OfferAction::Launch { tasks, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    let resources = serde_json::to_value(&tasks[0].resources).unwrap();
    assert_eq!(
        resources,
        json!([
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}, "role": "*"},
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, "role": "web"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 10.0}, "role": "*"},
        ])
    );
}

#[test]
fn task_shape() {
    let executor = executor_info("/opt/factorial-executor", Some(&FrameworkId::new("F")));
    let task = build_task(
        70,
        &AgentId::new("a1"),
        vec![Resource::scalar("cpus", 1.0)],
        &executor,
    );
    assert_eq!(
        serde_json::to_value(&task).unwrap(),
        json!({
            "name": "factorial 70", "task_id": {"value": "factorial-70"}, "agent_id": {"value": "a1"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1.0}}],
            "executor": {
                "type": "CUSTOM", "executor_id": {"value": "factorial-executor"},
                "framework_id": {"value": "F"},
                "command": {"shell": false, "value": "/opt/factorial-executor",
                            "arguments": ["/opt/factorial-executor"]},
                "name": "factorial executor"},
            "data": "NzA="})
    );
    assert_eq!(compute(&task), Ok((70, FACTORIAL_70.to_string())));
}

fn status(n: u32, state: TaskState, data: Option<String>) -> TaskStatus {
    let mut status = TaskStatus::new(task_id(n), state);
    status.data = data;
    status
}

#[test]
fn updates() {
    let mut framework = Framework::new(&[5, 70, 5], spec()).unwrap();
    assert_eq!(framework.total(), 2, "duplicates are dropped");
    framework.offers(&[offer("o1", "a1", "cpus:4;mem:100")], None);

    assert_eq!(
        framework.update(&status(5, TaskState::Running, None)),
        Progress::State {
            n: 5,
            state: TaskState::Running
        }
    );
    assert_eq!(
        framework.update(&status(9, TaskState::Running, None)),
        Progress::Ignored,
        "not ours"
    );
    assert_eq!(
        framework.update(&status(5, TaskState::Finished, Some(encode_result("120")))),
        Progress::Verified {
            n: 5,
            digits: "120".into()
        }
    );
    assert_eq!(
        framework.update(&status(5, TaskState::Finished, Some(encode_result("120")))),
        Progress::Ignored,
        "a repeated update"
    );
    assert!(!framework.done());
    assert_eq!(framework.outstanding(), vec![70]);
    assert_eq!(
        framework.update(&status(
            70,
            TaskState::Finished,
            Some(encode_result(FACTORIAL_70))
        )),
        Progress::Verified {
            n: 70,
            digits: FACTORIAL_70.into()
        }
    );
    assert!(framework.done());
}

fn check_failure(state: TaskState, data: Option<String>, needle: &str) {
    let mut framework = Framework::new(&[25], spec()).unwrap();
    framework.offers(&[offer("o1", "a1", "cpus:1;mem:10")], None);
    let mut update = status(25, state, data);
    update.reason = Some(Reason::ExecutorTerminated);
    update.message = Some("boom".into());
    match framework.update(&update) {
        Progress::Failed { n: 25, message } => assert!(message.contains(needle), "{message}"),
        other => panic!("{state}: expected a failure, got {other:?}"),
    }
    assert!(!framework.done());
}

#[test]
fn failures() {
    check_failure(
        TaskState::Failed,
        None,
        "factorial(25) ended in TASK_FAILED (REASON_EXECUTOR_TERMINATED): boom",
    );
    check_failure(TaskState::Lost, None, "TASK_LOST");
    check_failure(TaskState::Error, None, "TASK_ERROR");
    check_failure(TaskState::Killed, None, "TASK_KILLED");
    check_failure(
        TaskState::Finished,
        None,
        "without a usable result: the result is missing",
    );
    check_failure(
        TaskState::Finished,
        Some(encode_result("15511210043330985984000001")),
        "factorial(25) is wrong: got 15511210043330985984000001 (26 digits), expected 15511210043330985984000000",
    );
}

#[test]
fn refused_launches_go_back_in_the_queue() {
    let mut framework = Framework::new(&[5, 7], spec()).unwrap();
    let actions = framework.offers(&[offer("o1", "a1", "cpus:1;mem:10")], None);
    let OfferAction::Launch { tasks, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    framework.relaunch(tasks);
    let actions = framework.offers(&[offer("o2", "a1", "cpus:2;mem:20")], None);
    assert_eq!(summary(&actions), ["launch o2 [5 7] refuse Some(30.0)"]);
}

#[test]
fn invalid_number_lists() {
    assert!(Framework::new(&[], spec())
        .unwrap_err()
        .contains("no numbers"));
    assert!(Framework::new(&[1, MAX_N + 1], spec())
        .unwrap_err()
        .contains("10001"));
}
