// Peer: the official JavaScript SDK (npm apache-flink-statefun) on Node's own http server, as its README
// serves it. The functions mirror workload.py line for line, so every server does the same work.
// Run: NODE_PATH=<folder with node_modules> node server.js PORT
"use strict";
const http = require("http");
const {StateFun, kafkaEgressMessage, messageBuilder} = require("apache-flink-statefun");

const BasketType = StateFun.jsonType("com.example/Basket");
const CommandType = StateFun.jsonType("com.example/Cmd");
const ONE_DAY_MS = 24 * 60 * 60 * 1000;

const statefun = new StateFun();

statefun.bind({
  typename: "example/greeter",
  specs: [{name: "seen", type: StateFun.intType()}],
  fn(context, message) {
    const name = message.asString();
    const seen = (context.storage.seen || 0) + 1;
    context.storage.seen = seen;
    context.send(kafkaEgressMessage({
      typename: "io.statefun.playground/egress", topic: "greetings", key: name,
      value: `Hello ${name} for the ${seen}th time!`,
    }));
    context.send(messageBuilder({typename: "example/counter", id: name, value: seen, valueType: StateFun.intType()}));
  },
});

statefun.bind({
  typename: "example/cart",
  specs: [{name: "basket", type: BasketType, expireAfterWrite: ONE_DAY_MS}],
  fn(context, message) {
    const command = message.as(CommandType);
    const basket = context.storage.basket || {};
    basket[command.item] = (basket[command.item] || 0) + command.qty;
    context.storage.basket = basket;
  },
});

const DocType = StateFun.jsonType("com.example/Doc");

statefun.bind({
  typename: "example/doc",
  specs: [{name: "doc", type: DocType}],
  fn(context, message) {
    const document = context.storage.doc || {events: []};
    document.events.push({n: message.asInt(), tag: "event"});
    if (document.events.length > 700) {
      document.events.shift();
    }
    context.storage.doc = document;
  },
});

http.createServer(statefun.handler()).listen(Number(process.argv[2]), "127.0.0.1");
