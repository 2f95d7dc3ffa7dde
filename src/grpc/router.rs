//! The `Router` gRPC service: TestPattern and the rules.

use tonic::{Request, Response, Status};

use super::auth::{self, check};
use super::convert;
use super::status::to_status;
use crate::auth::{Action, Caller};
use crate::broker::{Broker, BrokerError, IteratorKind, RuleDescription, RuleSpec, RuleStatus};
use crate::proto::v1 as pb;
use crate::proto::v1::router_server::Router;
use crate::stream::{RuleName, StreamName};

/// The `Router` service.
#[derive(Debug, Clone)]
pub struct RouterService {
    broker: Broker,
}

impl RouterService {
    /// A service over `broker`.
    pub fn new(broker: Broker) -> Self {
        RouterService { broker }
    }
}

fn rule_name(name: &str) -> Result<RuleName, Status> {
    RuleName::new(name).map_err(|e| to_status(e.into()))
}

fn rule(d: RuleDescription) -> pb::Rule {
    pb::Rule {
        rule_name: d.name.to_string(),
        source_stream: d.definition.source.to_string(),
        filter: d.definition.filter.as_ref().map(convert::filter_to_pb),
        targets: d
            .definition
            .targets
            .iter()
            .map(|t| pb::RuleTarget {
                stream_name: t.to_string(),
            })
            .collect(),
        state: if d.definition.enabled {
            pb::RuleState::Enabled
        } else {
            pb::RuleState::Disabled
        } as i32,
        status: match d.status {
            RuleStatus::Running => pb::RuleStatus::Running,
            RuleStatus::Disabled => pb::RuleStatus::Disabled,
            RuleStatus::Error => pb::RuleStatus::Error,
        } as i32,
        last_error: d.last_error.unwrap_or_default(),
        matched_records: d.matched,
        routed_records: d.routed,
        shards: d
            .shards
            .iter()
            .map(|s| pb::RuleShardProgress {
                shard_id: s.shard.to_string(),
                next_sequence_number: s.next.get(),
                lag_records: s.lag_records,
                millis_behind_latest: convert::millis_i64(s.behind_latest),
            })
            .collect(),
        created_at_ms: d.created_at_ms.as_millis() as i64,
    }
}

#[tonic::async_trait]
impl Router for RouterService {
    async fn test_pattern(
        &self,
        request: Request<pb::TestPatternRequest>,
    ) -> Result<Response<pb::TestPatternResponse>, Status> {
        let r = request.into_inner();
        let filter = convert::filter(r.filter)
            .ok_or_else(|| to_status(BrokerError::invalid("filter.pattern", "is required")))?;
        let attributes = convert::put_attributes(r.attributes);
        let matches = self
            .broker
            .test_pattern(&filter, &r.data, &attributes)
            .map_err(to_status)?;
        Ok(Response::new(pb::TestPatternResponse { matches }))
    }

    #[tracing::instrument(skip_all, fields(rule = %request.get_ref().rule_name))]
    async fn put_rule(
        &self,
        request: Request<pb::PutRuleRequest>,
    ) -> Result<Response<pb::PutRuleResponse>, Status> {
        let caller = auth::caller(&request);
        let r = request.into_inner();
        check(&caller, Action::Admin, &r.source_stream)?;
        check(&caller, Action::Read, &r.source_stream)?;
        let name = rule_name(&r.rule_name)?;
        let source = convert::stream_name(&r.source_stream)?;
        let targets = r
            .targets
            .iter()
            .map(|t| {
                StreamName::new(&t.stream_name).map_err(|_| {
                    to_status(BrokerError::invalid(
                        "targets.stream_name",
                        format!(
                            "{:?} is not a stream name ([a-zA-Z0-9_.-]{{1,128}})",
                            t.stream_name
                        ),
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The rule routes with its creator's rights: it must read the source and write every
        // target.
        for t in &targets {
            check(&caller, Action::Write, t.as_str())?;
        }
        let enabled = match pb::RuleState::try_from(r.state) {
            Ok(pb::RuleState::Unspecified | pb::RuleState::Enabled) => true,
            Ok(pb::RuleState::Disabled) => false,
            Err(_) => {
                return Err(to_status(BrokerError::invalid(
                    "state",
                    format!("{} is not ENABLED or DISABLED", r.state),
                )))
            }
        };
        let start = match pb::ShardIteratorType::try_from(r.start_position) {
            Ok(pb::ShardIteratorType::Unspecified | pb::ShardIteratorType::Latest) => {
                IteratorKind::Latest
            }
            Ok(pb::ShardIteratorType::TrimHorizon) => IteratorKind::TrimHorizon,
            _ => {
                return Err(to_status(BrokerError::invalid(
                    "start_position",
                    "a rule starts at TRIM_HORIZON or LATEST",
                )))
            }
        };
        let described = self
            .broker
            .put_rule(RuleSpec {
                owner: match &caller {
                    Caller::Principal(p) => Some(p.name.clone()),
                    Caller::Anyone => None,
                },
                name,
                source,
                filter: convert::filter(r.filter),
                targets,
                enabled,
                start,
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::PutRuleResponse {
            rule: Some(rule(described)),
        }))
    }

    async fn describe_rule(
        &self,
        request: Request<pb::DescribeRuleRequest>,
    ) -> Result<Response<pb::DescribeRuleResponse>, Status> {
        let name = rule_name(&request.get_ref().rule_name)?;
        let described = self.broker.describe_rule(&name).map_err(to_status)?;
        auth::allow(&request, Action::Read, described.definition.source.as_str())?;
        Ok(Response::new(pb::DescribeRuleResponse {
            rule: Some(rule(described)),
        }))
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        let source = match request.get_ref().source_stream.as_str() {
            "" => None,
            s => Some(convert::stream_name(s)?),
        };
        let caller = auth::caller(&request);
        let rules = self
            .broker
            .list_rules(source.as_ref())
            .into_iter()
            .filter(|r| caller.may(Action::Read, r.definition.source.as_str()))
            .map(rule)
            .collect();
        Ok(Response::new(pb::ListRulesResponse { rules }))
    }

    #[tracing::instrument(skip_all, fields(rule = %request.get_ref().rule_name))]
    async fn delete_rule(
        &self,
        request: Request<pb::DeleteRuleRequest>,
    ) -> Result<Response<pb::DeleteRuleResponse>, Status> {
        let name = rule_name(&request.get_ref().rule_name)?;
        if let Ok(existing) = self.broker.describe_rule(&name) {
            auth::allow(&request, Action::Admin, existing.definition.source.as_str())?;
        }
        self.broker.delete_rule(&name).await.map_err(to_status)?;
        Ok(Response::new(pb::DeleteRuleResponse {}))
    }
}
