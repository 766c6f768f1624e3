// DecideCaretaker / MayCareFor (issue 21 part 3): the pure rule every peer
// applies to its own directory view. An owner silent for its policy's
// sparetimeCaretakerAfterMinutes gets exactly one caretaker among its live
// peers; the same view gives the same answer to everyone; the role moves
// only when the caretaker itself stops being live; an owner that sends a
// heartbeat again (or a policy with 0) has none.
#include "sparetime/ops/caretaker.h"

#include <gtest/gtest.h>

#include <set>

namespace sparetime::ops {
namespace {

namespace dir = sparetime::directory;
using std::chrono::hours;
using std::chrono::minutes;

const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));

dir::AgentRecord Agent(const std::string& name, std::optional<std::chrono::seconds> age) {
  dir::AgentRecord a;
  a.name = name;
  a.dn = "cn=" + name + ",ou=agents,ou=sparetime,dc=example,dc=org";
  a.address = name;
  a.port = 7401;
  a.free = 1 << 30;
  if (age) a.last_seen = kNow - *age;
  return a;
}

dir::DirectoryView View(std::chrono::seconds alpha_age) {
  dir::DirectoryView v;
  v.agents = {Agent("alpha", alpha_age), Agent("beta", minutes(1)), Agent("gamma", minutes(2)),
              Agent("delta", minutes(1)), Agent("epsilon", hours(3))};  // epsilon: not live
  return v;
}

TEST(CaretakerTest, ASilentOwnerGetsExactlyOneLiveCaretaker) {
  dir::DirectoryView view = View(hours(25));  // default: caretaker after 1440 min
  CaretakerDecision d = DecideCaretaker(view, "alpha", kNow);
  EXPECT_TRUE(d.absent);
  ASSERT_FALSE(d.caretaker.empty()) << d.why;
  EXPECT_TRUE(d.caretaker == "beta" || d.caretaker == "gamma" || d.caretaker == "delta") << d.caretaker;
  int allowed = 0;
  for (const dir::AgentRecord& a : view.agents) {
    Status s = MayCareFor(view, a.name, "alpha", kNow);
    if (s.ok()) {
      ++allowed;
      EXPECT_EQ(a.name, d.caretaker);
    } else {
      EXPECT_EQ(s.code(), ErrorCode::kPermissionDenied);
      EXPECT_NE(s.message().find("is not the caretaker of alpha"), std::string::npos) << s.message();
    }
  }
  EXPECT_EQ(allowed, 1);
  // Names compare ignoring case; the agents' order in the view does not matter.
  std::reverse(view.agents.begin(), view.agents.end());
  EXPECT_EQ(DecideCaretaker(view, "ALPHA", kNow).caretaker, d.caretaker);
}

TEST(CaretakerTest, TheRoleMovesOnlyWhenTheCaretakerStopsBeingLive) {
  dir::DirectoryView view = View(hours(30));
  const std::string first = DecideCaretaker(view, "alpha", kNow).caretaker;
  ASSERT_FALSE(first.empty());
  // Another peer going stale does not move it.
  for (dir::AgentRecord& a : view.agents) {
    if (a.name != first && a.name != "alpha" && a.name != "epsilon") {
      a.last_seen = kNow - hours(1);
      break;
    }
  }
  EXPECT_EQ(DecideCaretaker(view, "alpha", kNow).caretaker, first);
  // The caretaker going stale hands it to one other live peer.
  view = View(hours(30));
  for (dir::AgentRecord& a : view.agents) {
    if (a.name == first) a.last_seen = kNow - hours(1);
  }
  const std::string second = DecideCaretaker(view, "alpha", kNow).caretaker;
  EXPECT_FALSE(second.empty());
  EXPECT_NE(second, first);
  EXPECT_NE(second, "epsilon");
}

TEST(CaretakerTest, NoCaretakerWhileTheOwnerIsAroundOrThePolicySaysNever) {
  CaretakerDecision recent = DecideCaretaker(View(hours(23)), "alpha", kNow);
  EXPECT_FALSE(recent.absent);
  EXPECT_EQ(recent.caretaker, "");
  EXPECT_NE(recent.why.find("less than 1440 min"), std::string::npos) << recent.why;
  EXPECT_EQ(MayCareFor(View(hours(23)), "beta", "alpha", kNow).code(), ErrorCode::kPermissionDenied);

  dir::DirectoryView view = View(hours(30));
  view.agents[0].last_seen.reset();
  EXPECT_EQ(DecideCaretaker(view, "alpha", kNow).caretaker, "");  // never sent a heartbeat
  EXPECT_EQ(DecideCaretaker(View(hours(30)), "nobody", kNow).caretaker, "");  // no entry

  dir::PolicyEntry never;
  never.dn = "cn=default,ou=policies,ou=sparetime,dc=example,dc=org";
  never.name = "default";
  never.scope = dir::PolicyScope::kDomainDefault;
  never.settings.caretaker_after_minutes = 0;
  view = View(hours(24 * 365));
  view.policies.push_back(never);
  CaretakerDecision off = DecideCaretaker(view, "alpha", kNow);
  EXPECT_FALSE(off.absent);
  EXPECT_EQ(off.caretaker, "");

  never.settings.caretaker_after_minutes = 5;
  view.policies = {never};
  view.agents[0].last_seen = kNow - minutes(6);
  EXPECT_FALSE(DecideCaretaker(view, "alpha", kNow).caretaker.empty());
}

TEST(CaretakerTest, OwnersAreSpreadOverTheirPeers) {
  // Rendezvous over the owner's name: different owners get different
  // caretakers (not all on one box).
  dir::DirectoryView view;
  for (int i = 0; i < 40; ++i) view.agents.push_back(Agent("silent" + std::to_string(i), hours(48)));
  for (const char* p : {"p1", "p2", "p3", "p4"}) view.agents.push_back(Agent(p, minutes(1)));
  std::set<std::string> caretakers;
  for (int i = 0; i < 40; ++i) {
    caretakers.insert(DecideCaretaker(view, "silent" + std::to_string(i), kNow).caretaker);
  }
  EXPECT_EQ(caretakers, (std::set<std::string>{"p1", "p2", "p3", "p4"}));
}

}  // namespace
}  // namespace sparetime::ops
