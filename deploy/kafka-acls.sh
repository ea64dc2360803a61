#!/usr/bin/env bash
# GENERATED from shared/topics.py by `onewindow contracts acls` -- do not edit by hand.
# SCRAM users and ACLs: each principal may touch only its own topics. Run once by the `kafka-acls`
# job of deploy/compose.secure.yml; passwords are read from deploy/secrets/<principal>.
set -euo pipefail
K=/opt/kafka/bin
ADMIN=(--bootstrap-server "$BOOTSTRAP" --command-config /deploy/secrets/admin.properties)

user() {  # user NAME: create or update the SCRAM credential from its secret file
  "$K/kafka-configs.sh" "${ADMIN[@]}" --alter --entity-type users --entity-name "$1" \
    --add-config "SCRAM-SHA-512=[password=$(cat "/deploy/secrets/$1")]"
}
allow() {  # allow PRINCIPAL OPERATION TOPIC
  "$K/kafka-acls.sh" "${ADMIN[@]}" --add --allow-principal "User:$1" --operation "$2" --topic "$3"
}
group() {  # group PRINCIPAL GROUP [prefixed]: may use its consumer group (or groups by prefix)
  "$K/kafka-acls.sh" "${ADMIN[@]}" --add --allow-principal "User:$1" --operation Read --group "$2" \
    --resource-pattern-type "${3:-literal}"
}

user police
group police police- prefixed
allow police Read dispatch.police
allow police Read rejections.police
allow police Write feedback.police

user court
group court court- prefixed
allow court Read dispatch.court
allow court Read rejections.court
allow court Read court.mediation
allow court Write feedback.court
allow court Write court.referrals

user petition
group petition petition- prefixed
allow petition Read dispatch.petition
allow petition Read rejections.petition
allow petition Write feedback.petition

user grid
group grid grid- prefixed
allow grid Read dispatch.grid
allow grid Read rejections.grid
allow grid Write feedback.grid

user intake
group intake intake
group intake intake-status
allow intake Read intake.submissions
allow intake Read router.decisions
allow intake Read feedback.police
allow intake Read feedback.court
allow intake Read feedback.petition
allow intake Read feedback.mediation
allow intake Read feedback.grid
allow intake Write intake.cases
allow intake Write intake.rejections
allow intake Write deadletter

user router
group router router
allow router Read intake.cases
allow router Read feedback.police
allow router Read feedback.court
allow router Read feedback.petition
allow router Read feedback.mediation
allow router Read feedback.grid
allow router Write router.decisions
allow router Write dispatch.police
allow router Write dispatch.court
allow router Write dispatch.petition
allow router Write dispatch.mediation
allow router Write dispatch.grid
allow router Write rejections.police
allow router Write rejections.court
allow router Write rejections.petition
allow router Write rejections.mediation
allow router Write rejections.grid
allow router Write deadletter

user mediation
group mediation mediation
group mediation mediation-risks
allow mediation Read dispatch.mediation
allow mediation Read court.referrals
allow mediation Read intake.cases
allow mediation Write feedback.mediation
allow mediation Write mediation.events
allow mediation Write court.mediation
allow mediation Write mediation.risks
allow mediation Write deadletter

user audit
group audit audit
group audit audit-deadletters
allow audit Read intake.cases
allow audit Read router.decisions
allow audit Read mediation.events
allow audit Read court.referrals
allow audit Read court.mediation
allow audit Read dispatch.police
allow audit Read dispatch.court
allow audit Read dispatch.petition
allow audit Read dispatch.mediation
allow audit Read dispatch.grid
allow audit Read feedback.police
allow audit Read feedback.court
allow audit Read feedback.petition
allow audit Read feedback.mediation
allow audit Read feedback.grid
allow audit Read mediation.risks
allow audit Read deadletter
allow audit Write audit.digests

user simulator
group simulator department-simulator
allow simulator Read dispatch.police
allow simulator Read rejections.police
allow simulator Read dispatch.court
allow simulator Read rejections.court
allow simulator Read court.mediation
allow simulator Read dispatch.petition
allow simulator Read rejections.petition
allow simulator Read dispatch.grid
allow simulator Read rejections.grid
allow simulator Write feedback.police
allow simulator Write feedback.court
allow simulator Write court.referrals
allow simulator Write feedback.petition
allow simulator Write feedback.grid

echo "ACLs in place"
