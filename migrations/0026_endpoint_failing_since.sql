-- When an endpoint's current run of failed delivery attempts began (ms): an endpoint is disabled only once it has
-- failed 10 attempts in a row AND for 24 hours (a receiver down for a minute while 10 events went out kept failing
-- none of the later ones, yet was disabled). Endpoints failing now start their run at their next failed attempt.
ALTER TABLE `webhook_endpoints` ADD `failing_since` integer;
