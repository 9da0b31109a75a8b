// producers allocate strings/vectors, consumers free them (cross-thread frees), plus map churn
#include <thread>
#include <mutex>
#include <condition_variable>
#include <deque>
#include <string>
#include <vector>
#include <map>
#include <unordered_map>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <memory>
#include <atomic>
struct Msg { std::string s; std::vector<int> v; };
struct Q { std::mutex m; std::condition_variable cv; std::deque<std::unique_ptr<Msg>> d; bool done=false; };
int main(int argc,char**argv){
  int P=argc>1?atoi(argv[1]):2, C=argc>2?atoi(argv[2]):2; long N=argc>3?atol(argv[3]):2000000;
  Q q; std::vector<std::thread> ts; std::atomic<long> sum{0};
  for(int p=0;p<P;p++) ts.emplace_back([&,p]{ std::mt19937 rng(p); 
    for(long i=0;i<N;i++){ auto m=std::make_unique<Msg>(); m->s.assign(16+rng()%200,'a'+i%26); m->v.resize(rng()%64, (int)i);
      std::unique_lock<std::mutex> l(q.m); while(q.d.size()>10000){ l.unlock(); std::this_thread::yield(); l.lock(); } q.d.push_back(std::move(m)); l.unlock(); q.cv.notify_one(); } });
  std::vector<std::thread> cs;
  for(int c=0;c<C;c++) cs.emplace_back([&,c]{ std::map<std::string,long> mp; long local=0; long cnt=0;
    for(;;){ std::unique_ptr<Msg> m; { std::unique_lock<std::mutex> l(q.m); q.cv.wait(l,[&]{return !q.d.empty()||q.done;}); if(q.d.empty()) break; m=std::move(q.d.front()); q.d.pop_front(); }
      local+=m->s.size()+m->v.size(); std::string k=m->s.substr(0,8+(cnt%13)); k+=std::to_string(cnt%5000); mp[k]+=1; if(++cnt%100000==0) mp.clear(); }
    sum+=local; });
  for(auto&t:ts) t.join(); { std::lock_guard<std::mutex> l(q.m); q.done=true; } q.cv.notify_all(); for(auto&t:cs) t.join();
  printf("%ld\n", sum.load());
}
