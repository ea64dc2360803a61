#!/usr/bin/env bash
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
group() {  # group PRINCIPAL GROUP: may use its consumer group
  "$K/kafka-acls.sh" "${ADMIN[@]}" --add --allow-principal "User:$1" --operation Read --group "$2"
}

# Departments: read their dispatches and the rejections of their feedback, write their feedback.
for kind in police court petition; do
  user "$kind"
  allow "$kind" Read "dispatch.$kind"
  allow "$kind" Read "rejections.$kind"
  allow "$kind" Write "feedback.$kind"
  "$K/kafka-acls.sh" "${ADMIN[@]}" --add --allow-principal "User:$kind" --operation Read \
    --group "$kind-" --resource-pattern-type prefixed
done

# The court also takes mediation's outcomes, 司法确认 requests and hand-offs, and refers disputes.
allow court Read court.mediation
allow court Write court.referrals

# Services.
user intake
allow intake Read intake.submissions; group intake intake; group intake intake-status
allow intake Write intake.cases; allow intake Write intake.rejections; allow intake Write deadletter
allow intake Read router.decisions
for kind in police court petition mediation; do allow intake Read "feedback.$kind"; done

user router
allow router Read intake.cases; group router router; allow router Write router.decisions
allow router Write deadletter
for kind in police court petition mediation; do
  allow router Read "feedback.$kind"; allow router Write "dispatch.$kind"; allow router Write "rejections.$kind"
done

user mediation
allow mediation Read dispatch.mediation; allow mediation Read court.referrals; group mediation mediation
allow mediation Write court.mediation
allow mediation Write feedback.mediation; allow mediation Write mediation.events; allow mediation Write deadletter

user audit
group audit audit; group audit audit-deadletters
for topic in intake.cases router.decisions mediation.events court.referrals court.mediation deadletter \
             dispatch.police dispatch.court dispatch.petition dispatch.mediation \
             feedback.police feedback.court feedback.petition feedback.mediation; do
  allow audit Read "$topic"
done

user simulator
group simulator department-simulator
for kind in police court petition; do allow simulator Read "dispatch.$kind"; allow simulator Write "feedback.$kind"; done
allow simulator Read court.mediation; allow simulator Write court.referrals
echo "ACLs in place"
