-- Call queues in the columns of Asterisk's realtime `queues` and `queue_members` tables, so
-- Queue() finds a tenant's queue (made from its Queue extension) through res_config_mysql
-- or res_odbc.  A queue's name is xvb_q_<extension id>; the extension owns it.
CREATE TABLE queues (
    name VARCHAR(128) NOT NULL PRIMARY KEY,
    musiconhold VARCHAR(128) NULL,
    announce VARCHAR(128) NULL,
    context VARCHAR(128) NULL,
    timeout INTEGER NULL,
    ringinuse VARCHAR(3) NULL,
    announce_frequency INTEGER NULL,
    announce_position VARCHAR(8) NULL,
    announce_holdtime VARCHAR(8) NULL,
    retry INTEGER NULL,
    wrapuptime INTEGER NULL,
    maxlen INTEGER NULL,
    strategy VARCHAR(32) NULL,
    joinempty VARCHAR(128) NULL,
    leavewhenempty VARCHAR(128) NULL,
    extension_id BIGINT NULL,
    FOREIGN KEY (extension_id) REFERENCES extensions (id) ON DELETE CASCADE
) {table_options};

CREATE TABLE queue_members (
    uniqueid {id},
    queue_name VARCHAR(128) NOT NULL,
    interface VARCHAR(128) NOT NULL,
    membername VARCHAR(128) NULL,
    state_interface VARCHAR(128) NULL,
    penalty INTEGER NULL,
    paused INTEGER NULL,
    UNIQUE (queue_name, interface),
    FOREIGN KEY (queue_name) REFERENCES queues (name) ON DELETE CASCADE
) {table_options};
