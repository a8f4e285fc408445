//! HTTP routes of the operator's calls: `POST /api/v1` (policy, agent control, draining
//! and maintenance, dispatched in `core/policy.rs`), and the legacy `/roles`,
//! `/weights`, `/quota`, `/reserve`, `/unreserve`, `/maintenance/schedule`,
//! `/maintenance/status`, `/machine/down`, `/machine/up` and `/teardown` endpoints
//! (reference §3).

use crate::core::{Master, OperatorReply};
use crate::event_loop::{Change, Command};
use crate::http::{check_v1_request, error_response, json_response, read_body, AppState};
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use mantle_api::json::decode;
use mantle_api::maintenance::{MachineId, Machines, Schedule};
use mantle_api::operator::{
    OperatorCall, QuotaConfig, ReserveResources, ScalarValue, Teardown, UpdateQuota, UpdateWeights,
    WeightInfo,
};
use mantle_api::{AgentId, ApiError, FrameworkId, Resource, Resources};
use serde_json::{json, Value};
use std::collections::HashMap;

fn answer(result: Result<OperatorReply, ApiError>) -> Response {
    match result {
        Ok(OperatorReply::Ok(Some(body))) => {
            json_response(Bytes::from(body.to_string()), &HashMap::new())
        }
        Ok(OperatorReply::Ok(None)) => StatusCode::OK.into_response(),
        Ok(OperatorReply::Accepted) => StatusCode::ACCEPTED.into_response(),
        Err(err) => error_response(&err),
    }
}

async fn call(state: &AppState, call: OperatorCall) -> Result<OperatorReply, ApiError> {
    state
        .handle
        .request(|reply| Command::Operator {
            call: Box::new(call),
            reply,
        })
        .await
}

/// Makes a change through the core and answers once it is stored.
async fn change(state: &AppState, change: Change) -> Response {
    answer(
        state
            .handle
            .request(|reply| Command::Change { change, reply })
            .await,
    )
}

/// Answers with a small JSON read of the core's state.
async fn read(
    state: &AppState,
    read: fn(&Master) -> Value,
    query: &HashMap<String, String>,
) -> Response {
    match state
        .handle
        .request(|reply| Command::Inspect { read, reply })
        .await
    {
        Ok(body) => json_response(Bytes::from(body.to_string()), query),
        Err(err) => error_response(&err),
    }
}

/// `POST /api/v1`.
pub async fn operator_api(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (parts, body) = request.into_parts();
        check_v1_request(&parts.method, &parts.headers)?;
        let body = read_body(body).await?;
        let operator_call: OperatorCall = decode(&body)?;
        if let Some(answered) =
            crate::operator_api::answer(&state, &parts.headers, &operator_call).await
        {
            return answered;
        }
        Ok(answer(call(&state, operator_call).await))
    }
    .await;
    result.unwrap_or_else(|err| error_response(&err))
}

/// `/master/weights`: GET lists, PUT sets from a JSON array of `{role, weight}`.
pub async fn weights(State(state): State<AppState>, method: Method, body: Bytes) -> Response {
    if method == Method::PUT || method == Method::POST {
        let result = match decode::<Vec<WeightInfo>>(&body) {
            Ok(weight_infos) => {
                let update = OperatorCall {
                    kind: "UPDATE_WEIGHTS".into(),
                    update_weights: Some(UpdateWeights { weight_infos }),
                    ..Default::default()
                };
                call(&state, update).await
            }
            Err(err) => Err(err),
        };
        return answer(result);
    }
    read(&state, |m| json!(m.weights_json()), &HashMap::new()).await
}

/// The legacy `POST /master/quota` body (SET_QUOTA): the guarantee becomes both the
/// guarantee and the limit, as Mesos 1.9+ does.
#[derive(serde::Deserialize)]
struct LegacyQuota {
    role: String,
    #[serde(default)]
    guarantee: Vec<Resource>,
    #[serde(default)]
    force: bool,
}

/// `/master/quota`: GET shows the status, POST sets a role's quota.
pub async fn quota(State(state): State<AppState>, method: Method, body: Bytes) -> Response {
    if method != Method::POST {
        return read(&state, |m| m.quota_status_json(), &HashMap::new()).await;
    }
    let result = async {
        let legacy: LegacyQuota = decode(&body)?;
        let guarantee =
            Resources::from_wire("guarantee", &legacy.guarantee).map_err(ApiError::bad_request)?;
        let values: std::collections::BTreeMap<String, ScalarValue> = guarantee
            .scalar_names()
            .into_iter()
            .map(|name| {
                (
                    name.to_string(),
                    ScalarValue {
                        value: guarantee.scalar(name),
                    },
                )
            })
            .collect();
        let update = UpdateQuota {
            force: legacy.force,
            quota_configs: vec![QuotaConfig {
                role: legacy.role,
                guarantees: values.clone(),
                limits: values,
            }],
        };
        call(&state, quota_call(update)).await
    }
    .await;
    answer(result)
}

/// `DELETE /master/quota/ROLE` removes the role's quota.
pub async fn remove_quota(State(state): State<AppState>, Path(role): Path<String>) -> Response {
    let update = UpdateQuota {
        force: true,
        quota_configs: vec![QuotaConfig {
            role,
            ..Default::default()
        }],
    };
    answer(call(&state, quota_call(update)).await)
}

fn quota_call(update: UpdateQuota) -> OperatorCall {
    OperatorCall {
        kind: "UPDATE_QUOTA".into(),
        update_quota: Some(update),
        ..Default::default()
    }
}

/// `POST /master/reserve` and `/master/unreserve`: form fields `slaveId` and
/// `resources` (a JSON array of Resource).
async fn reserve_form(state: AppState, form: HashMap<String, String>, unreserve: bool) -> Response {
    let result = async {
        let agent = form
            .get("slaveId")
            .ok_or_else(|| ApiError::bad_request("missing form field 'slaveId'"))?;
        let text = form
            .get("resources")
            .ok_or_else(|| ApiError::bad_request("missing form field 'resources'"))?;
        let resources: Vec<Resource> = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("form field 'resources': {e}")))?;
        let body = ReserveResources {
            agent_id: AgentId::new(agent.clone()),
            source: Vec::new(),
            resources,
        };
        let mut operator_call = OperatorCall::default();
        if unreserve {
            operator_call.kind = "UNRESERVE_RESOURCES".into();
            operator_call.unreserve_resources = Some(body);
        } else {
            operator_call.kind = "RESERVE_RESOURCES".into();
            operator_call.reserve_resources = Some(body);
        }
        call(&state, operator_call).await
    }
    .await;
    answer(result)
}

pub async fn reserve(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    reserve_form(state, form, false).await
}

pub async fn unreserve(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    reserve_form(state, form, true).await
}

/// `/master/maintenance/schedule`: GET answers the schedule, POST replaces it with the
/// Schedule in the body.
pub async fn maintenance_schedule(
    State(state): State<AppState>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return read(&state, |m| json!(m.maintenance_schedule()), &query).await;
    }
    match decode::<Schedule>(&body) {
        Ok(schedule) => {
            change(
                &state,
                Box::new(move |m, now| {
                    m.update_schedule(now, schedule, "schedule")
                        .map(|()| OperatorReply::Ok(None))
                }),
            )
            .await
        }
        Err(err) => error_response(&err),
    }
}

/// `/master/maintenance/status`: the DRAINING machines with the frameworks' answers, and
/// the DOWN machines.
pub async fn maintenance_status(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    read(&state, |m| json!(m.maintenance_status()), &query).await
}

/// `POST /master/machine/down` with a JSON array of machine IDs: START_MAINTENANCE.
pub async fn machine_down(State(state): State<AppState>, body: Bytes) -> Response {
    machines_change(state, body, true).await
}

/// `POST /master/machine/up` with a JSON array of machine IDs: STOP_MAINTENANCE.
pub async fn machine_up(State(state): State<AppState>, body: Bytes) -> Response {
    machines_change(state, body, false).await
}

async fn machines_change(state: AppState, body: Bytes, down: bool) -> Response {
    let machines = match decode::<Vec<MachineId>>(&body) {
        Ok(machines) => Machines { machines },
        Err(err) => return error_response(&err),
    };
    let apply: Change = Box::new(move |m, now| {
        if down {
            m.start_maintenance(now, machines, "machines")?;
        } else {
            m.stop_maintenance(machines, "machines")?;
        }
        Ok(OperatorReply::Ok(None))
    });
    change(&state, apply).await
}

/// `POST /master/teardown` with the form field `frameworkId`: TEARDOWN.
pub async fn teardown(
    State(state): State<AppState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(id) = form.get("frameworkId") else {
        return error_response(&ApiError::bad_request("missing form field 'frameworkId'"));
    };
    let teardown = Teardown {
        framework_id: FrameworkId::new(id.clone()),
    };
    let apply: Change = Box::new(move |m, now| {
        m.operator_teardown(now, teardown, "frameworkId")
            .map(|()| OperatorReply::Ok(None))
    });
    change(&state, apply).await
}
